"""What an issuer API key may do: its scopes (a module of its own so the CLI can list them cheaply)."""

from __future__ import annotations

from typing import Literal

#: ``issue``: submit certificates; ``revoke``: revoke them; ``read``: read certificates and batches.
Scope = Literal["issue", "revoke", "read"]
SCOPES: tuple[Scope, ...] = ("issue", "revoke", "read")
