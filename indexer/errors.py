"""The indexer's errors: one family under :class:`chain.errors.FinVaultError`, each with a stable code."""

from __future__ import annotations

from chain.errors import FinVaultError


class DecodeError(FinVaultError, ValueError):
    """A log whose topics or data do not decode as the registry event it claims to be."""

    code = "log_undecodable"


class IndexerError(FinVaultError):
    """Base of the sync loop's errors (the node answers them with HTTP 503)."""

    code = "indexer_error"


class ReorgBeyondFinality(IndexerError):
    """The chain rewrote blocks the mirror had as final. Never repaired silently: an operator
    re-reads the mirror from ``resync_from`` (``finvault resync --from``)."""

    code = "reorg_beyond_finality"

    def __init__(self, message: str, *, resync_from: int) -> None:
        super().__init__(message)
        self.resync_from = resync_from


class MirrorDivergence(IndexerError):
    """The events do not fold into the accumulators they carry: the mirror cannot be trusted."""

    code = "mirror_divergence"


class QuorumDisagreement(IndexerError):
    """Two endpoints report different hashes for the same block."""

    code = "quorum_disagreement"


class ChainMoved(IndexerError):
    """Logs and headers disagree: the chain changed between two reads. The step is retried."""

    code = "chain_moved"
