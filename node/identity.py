"""Who issued it, checked: the node resolves an issuer's did:web and reports the domain beside a verdict.

A credential whose ``issuer`` is ``did:web:DOMAIN`` names a document at
``https://DOMAIN/.well-known/did.json``. The node fetches it (asynchronously, never longer than
``did_web_timeout`` for one verdict), caches the answer, and judges it with
:func:`chain.core.identity.judge`: ``verified`` when the document names the account that anchored
the receipt's batch on this chain. Identity is advisory: a verdict's status never depends on it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from chain.core.data_integrity import issuer_id
from chain.core.identity import IdentityError, IdentityStatus, did_web_domain, did_web_url, judge
from chain.core.verify import Status, Verdict

#: A did.json is small; a bigger answer is not one.
MAX_DOCUMENT_BYTES = 64 * 1024
#: DIDs remembered before the cache is emptied (bounded memory).
CACHE_ENTRIES = 10_000


class IdentityResolver:
    """did:web documents by DID, fetched with a bounded wait and cached (failures too, briefly)."""

    def __init__(self, *, timeout: float, cache_seconds: float, ca_file: Path | None = None) -> None:
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.ca_file = ca_file
        self._cache: dict[str, tuple[float, Any]] = {}
        self._pending: dict[str, asyncio.Task[Any]] = {}
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        """Closes the HTTP client (at shutdown)."""
        if self._client is not None:
            await self._client.aclose()

    def _verify(self) -> ssl.SSLContext | bool:
        """The system's trust store, plus ``ca_file`` when one is configured (HTTPS only, always)."""
        if self.ca_file is None:
            return True
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=str(self.ca_file))
        return context

    async def _fetch(self, did: str) -> Any:
        """The parsed document, or None when it could not be had."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout, follow_redirects=False, verify=self._verify()
            )
        try:
            response = await self._client.get(did_web_url(did), headers={"Accept": "application/did+json"})
            if response.status_code != 200 or len(response.content) > MAX_DOCUMENT_BYTES:
                return None
            return response.json()
        except (httpx.HTTPError, ValueError, IdentityError):
            return None

    async def document(self, did: str) -> tuple[bool, Any]:
        """``(reached, document)`` for ``did``, from the cache or fetched within the timeout."""
        cached = self._cache.get(did)
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1] is not None, cached[1]
        task = self._pending.get(did)
        if task is None:
            task = self._pending[did] = asyncio.ensure_future(self._fetch(did))
            task.add_done_callback(lambda done: self._settle(did, done))
        try:
            found = await asyncio.wait_for(asyncio.shield(task), self.timeout)
        except TimeoutError:
            return False, None  # the fetch goes on; its answer is cached for the next verdict
        return found is not None, found

    def _settle(self, did: str, task: asyncio.Task[Any]) -> None:
        self._pending.pop(did, None)
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache.clear()
        found = None if task.cancelled() or task.exception() else task.result()
        self._cache[did] = (time.monotonic(), found)

    async def identity(self, credential: Any, verdict: Verdict, chain_id: int) -> dict[str, Any]:
        """``{did, domain, status}`` for a verdict on ``credential`` (see the module docstring)."""
        did = issuer_id(credential) if isinstance(credential, Mapping) else None
        # Only a receipt whose own checks hold is worth a fetch: an INVALID one may name any domain.
        if did is None or not did.startswith("did:web:") or verdict.status is Status.INVALID:
            return {"did": did, "domain": None, "status": "not_configured"}
        try:
            domain = did_web_domain(did)
            did_web_url(did)
        except IdentityError:
            return {"did": did, "domain": None, "status": "mismatch"}
        reached, document = await self.document(did)
        anchoring = verdict.issuer.address if verdict.issuer is not None else ""
        status: IdentityStatus = (
            judge(document, did, chain_id=chain_id, issuer=anchoring) if reached else "unreachable"
        )
        return {"did": did, "domain": domain, "status": status}
