"""The issuer service's errors: every one a :class:`~chain.errors.FinVaultError` with a stable code.

Errors about input the operator supplied (a template, an input file, a certificate id) are also
:class:`~chain.errors.ConfigError`, so the command line exits with status 2 for them.
"""

from __future__ import annotations

from chain.errors import ConfigError, FinVaultError


class IssuerError(FinVaultError):
    """Base of the issuer service's own errors."""

    code = "issuer_error"


class TemplateError(IssuerError, ConfigError):
    """A credential template that cannot be used."""

    code = "template_invalid"


class IntakeError(IssuerError, ConfigError):
    """An input file that cannot be read as a whole (unreadable, wrong format, header lacks columns)."""

    code = "intake_invalid"


class IntakeRejected(IntakeError):
    """Strict intake met a bad row: nothing from the input was stored."""

    code = "intake_rejected"


class IntakeAllRejected(IntakeError):
    """Every row of the input was rejected: the command stored nothing and says so by its exit status."""

    code = "intake_all_rejected"


class StoreError(IssuerError):
    """The issuer's database cannot be opened, or lacks something it must have."""

    code = "store_error"


class UnknownCertificate(IssuerError, ConfigError):
    """No certificate (or batch) with that id, leaf or root in the issuer's store."""

    code = "certificate_unknown"


class UnknownApiKey(IssuerError, ConfigError):
    """No API key with that id in the issuer's store."""

    code = "api_key_unknown"


class NotAnchored(IssuerError):
    """The certificate or batch has not been anchored yet, so it cannot be revoked."""

    code = "not_anchored"


class AnchorConflict(IssuerError):
    """The batch's root is already anchored on-chain by another account (``taken_by``): copied from
    the mempool or replayed. The service secures and seals the batch's certificates afresh."""

    code = "anchor_conflict"

    def __init__(self, message: str, *, taken_by: str) -> None:
        super().__init__(message)
        self.taken_by = taken_by


class SigningKeyUnusable(IssuerError):
    """The document-signing key is not registered to this issuer on-chain, or has been revoked."""

    code = "signing_key_unusable"


class WorkerFailed(IssuerError):
    """A worker process of the issuer died in the middle of its work (killed, out of memory), or
    what it raised cannot be brought back; nothing it did was committed, and a new run redoes it."""

    code = "worker_failed"
