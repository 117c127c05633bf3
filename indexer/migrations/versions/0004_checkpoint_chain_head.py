"""the chain head and finalized block each checkpoint was written at

Revision ID: 0004
Revises: 0003

A mirror written before has no record of the head its steps read: its checkpoint's own block stands
in for the head (no confirmations beyond those it has), and its own finalized block for the chain's.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("checkpoint", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain_head_block", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("chain_finalized_block", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE checkpoint SET chain_head_block = block_number, chain_finalized_block = finalized_block"
    )
    with op.batch_alter_table("checkpoint", schema=None) as batch_op:
        batch_op.alter_column("chain_head_block", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("chain_finalized_block", existing_type=sa.BigInteger(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("checkpoint", schema=None) as batch_op:
        batch_op.drop_column("chain_finalized_block")
        batch_op.drop_column("chain_head_block")
