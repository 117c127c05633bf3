"""receipts v2: certificates keep their secured credential; salts, digest and leaf until sealing are gone

Revision ID: 0003
Revises: 0002

finvault-receipt/2 secures each credential once, at sealing (an SD-JWT, or a Data Integrity proof),
and its leaf commits to that: a pending certificate has no digest or leaf yet, and no salts at all.
``salts`` stays, nullable, for certificates sealed before (their /1 receipts were written already).

A batch sealed under /1 and not yet anchored cannot be finished by this version (its receipts would
be /1): the upgrade refuses while one exists. Finish it with the previous version first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from issuer.errors import StoreError

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    unfinished = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM batches WHERE status IN ('sealed', 'sending', 'sent', 'failed')")
    )
    if unfinished:
        raise StoreError(
            f"{unfinished} batch(es) sealed under finvault-receipt/1 are not anchored yet: finish them "
            "with the previous FinVault version (`finvault anchor`, with --retry-failed for failed "
            "ones), then upgrade"
        )
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secured", sa.Text(), nullable=True))
        batch_op.alter_column("salts", existing_type=sa.JSON(), nullable=True)
        batch_op.alter_column("digest", existing_type=sa.String(length=66), nullable=True)
        batch_op.alter_column("leaf", existing_type=sa.String(length=66), nullable=True)
    op.execute("UPDATE certificates SET salts = NULL, digest = NULL, leaf = NULL WHERE status = 'pending'")


def downgrade() -> None:
    raise StoreError("receipts v2 cannot be downgraded: pending certificates have no /1 salts")
