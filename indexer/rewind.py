"""Rewinding the mirror: delete everything above a block and put the checkpoint back there.

Used by the reorg handler (back to the fork point) and by ``finvault resync`` (back to just below
the first drifted block). Rows are append-only, so deleting by block number and re-deriving the
checkpoint's accumulators and counts from what remains is exact. The caller owns the transaction.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from chain.core.accumulators import genesis_accumulators
from indexer.schema import EVENT_TABLES, AnchorRow, BlockRow, CheckpointRow, RevocationRow


def rewind(session: Session, checkpoint: CheckpointRow, block: int) -> None:
    """Deletes every row above ``block`` and moves ``checkpoint`` to it; ``blocks`` must hold it."""
    for table in EVENT_TABLES:
        session.execute(delete(table).where(table.block_number > block))
    session.execute(delete(BlockRow).where(BlockRow.number > block))
    last_anchor = session.scalar(
        select(AnchorRow.accumulator)
        .order_by(AnchorRow.block_number.desc(), AnchorRow.log_index.desc())
        .limit(1)
    )
    last_revocation = session.scalar(
        select(RevocationRow.accumulator)
        .order_by(RevocationRow.block_number.desc(), RevocationRow.log_index.desc())
        .limit(1)
    )
    genesis_anchor, genesis_revocation = genesis_accumulators(
        checkpoint.chain_id, checkpoint.registry_address
    )
    checkpoint.revision += 1
    checkpoint.block_number = block
    checkpoint.block_hash = session.get_one(BlockRow, block).hash
    checkpoint.finalized_block = min(checkpoint.finalized_block, block)
    checkpoint.anchor_accumulator = last_anchor or genesis_anchor
    checkpoint.revocation_accumulator = last_revocation or genesis_revocation
    checkpoint.anchor_count = session.execute(select(func.count()).select_from(AnchorRow)).scalar_one()
    checkpoint.revocation_count = session.execute(
        select(func.count()).select_from(RevocationRow)
    ).scalar_one()
