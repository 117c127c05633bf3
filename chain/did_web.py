"""Who issued it, checked: issuers' did:web documents fetched like a careful client, and judged.

A credential whose ``issuer`` is ``did:web:HOST[:PATH]`` names a document at
``https://HOST/(PATH|.well-known)/did.json``. The node fetches it beside each verdict, and
``finvault verify --rpc`` does too; both go through :class:`IdentityResolver`, whose outbound rules
are the same everywhere. The DID comes from an untrusted receipt, so every fetch is bounded:

- **URL**: only the forms the did:web method allows (:func:`chain.core.identity.parse_did_web`):
  HTTPS, a valid host name (IDNs as A-labels) with an optional port, path segments that cannot
  encode ``/``, ``?``, ``#``, ``%`` or dot segments. No redirects, no proxy from the environment.
- **Addresses**: the host is resolved here and every address judged by
  :func:`chain.core.identity.forbidden_address`; the connection is made to exactly an address that
  passed (resolve first and pin: no second lookup that DNS rebinding could answer differently).
  Loopback, private, link-local and reserved addresses are refused unless ``allow_private``. TLS
  still checks the certificate against the host name (SNI and hostname verification are httpcore's,
  on the origin's name, not on the pinned address).
- **Time**: one total deadline per fetch (``fetch_deadline``: DNS, connect, TLS, headers, body),
  apart from how long a verdict waits for it (``timeout``; a slower fetch goes on and is cached).
- **Size**: the body is streamed and reading stops as soon as it passes
  :data:`MAX_DOCUMENT_BYTES` (a ``Content-Length`` over it stops before the body); no content
  coding is accepted, so nothing is decompressed.
- **Shape**: the body is parsed by :func:`chain.core.canonical.loads_strict` (UTF-8, no duplicate
  keys, deep nesting an error, not a crash).
- **Sharing**: one small connection pool per host (:data:`CONNECTIONS_PER_HOST`), so slow hosts
  queue only their own fetches and never starve a well-behaved issuer's; at most
  :data:`MAX_FETCHES_IN_FLIGHT` fetches at once across all hosts (and as many lookup threads), so a
  bulk request naming a thousand hosts holds a few dozen sockets, not thousands. Past the cap a
  fetch answers ``unreachable`` (``busy``) at once, and ``busy`` is never cached.

Every failure is an identity status with a reason code, never an exception: ``unreachable``
(nothing usable came back in time), ``refused`` (the DID names a URL or address these rules
forbid: retrying will not help), ``mismatch`` (a document came back that does not name the
account, or is not a did.json). Identity is advisory: a verdict's status never depends on it.

httpcore is used directly rather than through httpx's client: its network backend is where the
pinning can be done with public API, and it does no content decoding on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpcore

from chain.core.canonical import DocumentError, loads_strict
from chain.core.data_integrity import issuer_id
from chain.core.identity import (
    DidWebLocation,
    IdentityError,
    IdentityStatus,
    forbidden_address,
    judge,
    parse_did_web,
)
from chain.core.verify import Status, Verdict

if TYPE_CHECKING:
    from chain.service.settings import DidWebSettings

log = logging.getLogger(__name__)

#: A did.json is small; a bigger answer is not one (and is not read past this).
MAX_DOCUMENT_BYTES = 64 * 1024
#: DIDs remembered before the cache is emptied (bounded memory).
CACHE_ENTRIES = 10_000
#: Connections one host may hold at once; its other fetches queue within their own deadline.
CONNECTIONS_PER_HOST = 2
#: Hosts with a pool at once. Past this, idle pools are closed; while every pool is busy a new
#: host's fetch answers ``unreachable`` (``busy``) at once rather than wait behind the others.
MAX_HOST_POOLS = 1024
#: A failure is remembered at most this long (a host that was down may be back).
FAILURE_CACHE_SECONDS = 30.0
#: Fetches in flight at once, across every host; past it a fetch answers ``unreachable``
#: (``busy``) at once. Each holds at most one socket and one lookup thread (lookup threads are
#: capped at this too, since a stuck resolver call outlives its fetch), so the resolver holds at
#: most this many of each: they fit in the descriptors a server reserves beside its connection cap
#: (chain.service.connections.RESERVED_DESCRIPTORS = 128), and a bulk request naming 1,000 hosts
#: no longer starts 1,000 threads and up to 2,048 sockets.
MAX_FETCHES_IN_FLIGHT = 32


class AddressRefused(Exception):
    """The host resolved only to addresses the outbound rules forbid (no connection was made)."""

    def __init__(self, host: str, kind: str) -> None:
        super().__init__(f"{host} resolves only to forbidden addresses ({kind})")
        self.kind = kind


class _Busy(Exception):
    """The resolver is at its cap of work in flight (:data:`MAX_FETCHES_IN_FLIGHT`)."""


class _NoDocument(Exception):
    """The answer is not a document to read (status, coding, size): ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Fetched:
    """What one fetch found: a parsed ``document``, or the identity status and reason without one."""

    document: Any = None
    failure: IdentityStatus | None = None
    reason: str | None = None


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, judges every address, and connects only to one that passed."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private
        # Lookup threads still running: they end in their own thread, hence the lock.
        self._lookups = 0
        self._lookups_lock = threading.Lock()

    def _lookup_ended(self) -> None:
        with self._lookups_lock:
            self._lookups -= 1

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """A TCP stream to an allowed address of ``host`` (tried in resolver order)."""
        with self._lookups_lock:
            # Fetches are capped, but a stuck getaddrinfo outlives its fetch's deadline: the
            # threads are capped themselves, or a resolver that never answers would pile them up.
            if self._lookups >= MAX_FETCHES_IN_FLIGHT:
                raise _Busy
            self._lookups += 1
        try:
            infos = await _lookup(host, port, ended=self._lookup_ended)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host}: {exc}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        allowed = [a for a in addresses if self._allow_private or forbidden_address(a) is None]
        if not allowed:
            raise AddressRefused(host, (forbidden_address(addresses[0]) if addresses else None) or "none")
        failure: Exception = httpcore.ConnectError(f"{host}: no address")
        for address in allowed:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        """Never: a did:web names a host."""
        raise httpcore.ConnectError("did:web fetches use TCP only")

    async def sleep(self, seconds: float) -> None:
        """httpcore's own pauses."""
        await self._inner.sleep(seconds)


async def _lookup(host: str, port: int, *, ended: Callable[[], None]) -> list[Any]:
    """``getaddrinfo`` in a daemon thread of its own, which calls ``ended`` as it ends. The event
    loop's default executor would make a stuck resolver outlive the fetch's deadline at shutdown
    (``finvault verify`` waits for its threads, and so does the interpreter's exit for a thread
    pool); a daemon thread is abandoned."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[list[Any]] = loop.create_future()

    def settle(result: list[Any] | None, error: OSError | None) -> None:
        if answer.done():
            return  # the fetch gave up (deadline) before the resolver answered
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(result or [])

    def run() -> None:
        result: list[Any] | None = None
        error: OSError | None = None
        try:
            result = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            error = exc
        finally:
            ended()
        # The loop may have closed meanwhile (the command ended): nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    try:
        threading.Thread(target=run, name="did-web-lookup", daemon=True).start()
    except RuntimeError:  # no thread could be started: it will not call ``ended`` itself
        ended()
        raise OSError("no thread for the host lookup") from None
    return await answer


@dataclass
class _HostPool:
    http: httpcore.AsyncConnectionPool
    active: int = 0


class IdentityResolver:
    """did:web documents by DID, fetched within the outbound rules above and cached (failures briefly)."""

    def __init__(
        self,
        *,
        timeout: float,
        fetch_deadline: float,
        cache_seconds: float,
        allow_private: bool = False,
        ca_file: Path | None = None,
        max_document_bytes: int = MAX_DOCUMENT_BYTES,
    ) -> None:
        self.timeout = timeout
        self.fetch_deadline = fetch_deadline
        self.cache_seconds = cache_seconds
        self.allow_private = allow_private
        self.ca_file = ca_file
        self.max_document_bytes = max_document_bytes
        self._cache: dict[str, tuple[float, Fetched]] = {}
        self._pending: dict[str, asyncio.Task[Fetched]] = {}
        self._pools: dict[str, _HostPool] = {}
        self._in_flight = 0
        self._ssl: ssl.SSLContext | None = None
        self._backend = PinnedBackend(allow_private=allow_private)

    @classmethod
    def from_settings(cls, settings: DidWebSettings, *, wait_for_fetch: bool = False) -> IdentityResolver:
        """A resolver with ``settings``' rules. ``wait_for_fetch``: a verdict waits as long as a
        fetch may take (a one-shot command, which has no next verdict to cache the answer for)."""
        return cls(
            timeout=settings.did_web_fetch_deadline if wait_for_fetch else settings.did_web_timeout,
            fetch_deadline=settings.did_web_fetch_deadline,
            cache_seconds=settings.did_web_cache_seconds,
            allow_private=settings.did_web_allow_private,
            ca_file=settings.did_web_ca_file,
        )

    async def aclose(self) -> None:
        """Stops fetches in flight and closes every connection (at shutdown)."""
        for task in list(self._pending.values()):
            task.cancel()
        await asyncio.gather(*self._pending.values(), return_exceptions=True)
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.http.aclose()

    # -- fetching ---------------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        """The system's trust store, plus ``ca_file`` when one is configured (HTTPS only, always)."""
        if self._ssl is None:
            context = ssl.create_default_context()
            if self.ca_file is not None:
                context.load_verify_locations(cafile=str(self.ca_file))
            self._ssl = context
        return self._ssl

    async def _pool_for(self, domain: str) -> _HostPool | None:
        """``domain``'s own pool (made on first use), or None while every pool is busy."""
        pool = self._pools.get(domain)
        if pool is not None:
            return pool
        if len(self._pools) >= MAX_HOST_POOLS:
            # Every idle pool leaves the table before the first close: during a close's await
            # another fetch must neither pick up a pool being closed nor see a half-swept table.
            idle = [
                self._pools.pop(name) for name in [n for n, held in self._pools.items() if held.active == 0]
            ]
            for held in idle:
                await held.http.aclose()
            # While we were closing, another fetch for this host may have made its pool: use it,
            # rather than replace it (and leak its connections).
            pool = self._pools.get(domain)
            if pool is not None:
                return pool
            if len(self._pools) >= MAX_HOST_POOLS:
                return None
        pool = self._pools[domain] = _HostPool(
            httpcore.AsyncConnectionPool(
                ssl_context=self._ssl_context(),
                max_connections=CONNECTIONS_PER_HOST,
                # No idle sockets: httpcore expires one only when its pool is next used, so up to
                # MAX_HOST_POOLS of them could linger, and the answer is cached longer (300 s) than
                # any keep-alive would last anyway.
                max_keepalive_connections=0,
                network_backend=self._backend,
            )
        )
        return pool

    async def _read(self, http: httpcore.AsyncConnectionPool, where: DidWebLocation) -> bytes:
        """The body of a 200 answer, read no further than the size bound."""
        # Each step may use the whole deadline; the deadline itself is the caller's asyncio.timeout.
        step = {"connect": self.fetch_deadline, "read": self.fetch_deadline, "write": self.fetch_deadline}
        headers = [
            (b"Accept", b"application/did+json, application/json"),
            (b"Accept-Encoding", b"identity"),
            (b"User-Agent", b"finvault-did-web"),
        ]
        async with http.stream(
            "GET", where.url, headers=headers, extensions={"timeout": {**step, "pool": self.fetch_deadline}}
        ) as response:
            if response.status != 200:
                raise _NoDocument("http_status")
            fields = {name.lower(): value.strip().lower() for name, value in response.headers}
            if fields.get(b"content-encoding", b"identity") not in (b"identity", b""):
                raise _NoDocument("content_encoding")  # compressed answers are not inflated here
            length = fields.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_document_bytes):
                raise _NoDocument("too_large")
            body = bytearray()
            async for chunk in response.aiter_stream():
                body += chunk
                if len(body) > self.max_document_bytes:
                    raise _NoDocument("too_large")  # leaving the block closes the connection unread
            return bytes(body)

    async def _fetch(self, did: str) -> Fetched:
        """One fetch of ``did``'s document within every bound; never raises."""
        try:
            where = parse_did_web(did)
        except IdentityError:
            return Fetched(failure="refused", reason="did_invalid")
        if self._in_flight >= MAX_FETCHES_IN_FLIGHT:
            return Fetched(failure="unreachable", reason="busy")
        self._in_flight += 1
        try:
            return await self._fetch_within_cap(where)
        finally:
            self._in_flight -= 1

    async def _fetch_within_cap(self, where: DidWebLocation) -> Fetched:
        """:meth:`_fetch` once it holds one of the :data:`MAX_FETCHES_IN_FLIGHT` places."""
        pool = await self._pool_for(where.domain)
        if pool is None:
            return Fetched(failure="unreachable", reason="busy")
        # Counted in before any await: an idle-pool sweep must never close this pool under us.
        pool.active += 1
        try:
            async with asyncio.timeout(self.fetch_deadline):
                body = await self._read(pool.http, where)
        except _Busy:
            return Fetched(failure="unreachable", reason="busy")
        except AddressRefused:
            return Fetched(failure="refused", reason="address_forbidden")
        except _NoDocument as exc:
            return Fetched(failure="unreachable", reason=exc.reason)
        except (TimeoutError, httpcore.TimeoutException):
            return Fetched(failure="unreachable", reason="deadline")
        except (httpcore.ConnectError, ssl.SSLError):
            return Fetched(failure="unreachable", reason="connect_failed")
        except (httpcore.NetworkError, httpcore.ProtocolError, OSError):
            return Fetched(failure="unreachable", reason="protocol_error")
        except Exception:  # a bug, not an issuer's fault: logged, and still only a status
            log.exception("did:web fetch of %s failed unexpectedly", where.location)
            return Fetched(failure="unreachable", reason="resolver_error")
        finally:
            pool.active -= 1
        try:
            return Fetched(document=loads_strict(body, max_bytes=self.max_document_bytes))
        except DocumentError:  # an answer came, and it is not a did.json: it names no account
            return Fetched(failure="mismatch", reason="document_invalid")

    async def fetched(self, did: str) -> Fetched:
        """``did``'s document (or why none), from the cache or fetched; a verdict waits at most
        ``timeout`` (``unreachable``, ``slow``), while the fetch goes on and is cached."""
        cached = self._cache.get(did)
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1]
        task = self._pending.get(did)
        if task is None:
            task = self._pending[did] = asyncio.ensure_future(self._fetch(did))
            task.add_done_callback(lambda done: self._settle(did, done))
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.timeout)
        except TimeoutError:
            return Fetched(failure="unreachable", reason="slow")

    def _settle(self, did: str, task: asyncio.Task[Fetched]) -> None:
        self._pending.pop(did, None)
        if task.cancelled() or task.exception() is not None:
            return
        found = task.result()
        if found.reason == "busy":
            return  # our load, not the issuer's fault: a burst must not hide a good issuer for 30 s
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache.clear()
        lasts = self.cache_seconds
        if found.failure in ("unreachable", "refused"):
            lasts = min(lasts, FAILURE_CACHE_SECONDS)
        self._cache[did] = (time.monotonic() + lasts, found)

    # -- judging ----------------------------------------------------------------------------------

    async def resolve(self, did: str, *, chain_id: int, issuer: str) -> dict[str, Any]:
        """The identity object for a did:web ``did`` whose batch ``issuer`` anchored on ``chain_id``:
        ``did``, ``domain``, ``location``, ``unicode_location``, ``url``, ``status``, ``reason``."""
        try:
            where: DidWebLocation | None = parse_did_web(did)
        except IdentityError:
            where = None
        answer: dict[str, Any] = {
            "did": did,
            "domain": where.domain if where else None,
            "location": where.location if where else None,
            "unicode_location": where.unicode_location if where else None,
            "url": where.url if where else None,
        }
        if where is None:
            return {**answer, "status": "refused", "reason": "did_invalid"}
        found = await self.fetched(did)
        if found.failure is not None:
            return {**answer, "status": found.failure, "reason": found.reason}
        status = judge(found.document, did, chain_id=chain_id, issuer=issuer)
        return {**answer, "status": status, "reason": None if status == "verified" else "not_named"}

    async def identity(self, verdict: Verdict, chain_id: int) -> dict[str, Any]:
        """The identity object beside ``verdict``, for the issuer its credential names (as disclosed);
        never raises (a failure is a status)."""
        credential = verdict.credential
        did = issuer_id(credential) if isinstance(credential, Mapping) else None
        # Only a receipt whose own checks hold is worth a fetch: an INVALID one may name any domain.
        if did is None or not did.startswith("did:web:") or verdict.status is Status.INVALID:
            return not_configured(did)
        anchoring = verdict.issuer.address if verdict.issuer is not None else ""
        try:
            return await self.resolve(did, chain_id=chain_id, issuer=anchoring)
        except Exception:  # the verdict stands without identity; never a 500 for a DID
            log.exception("did:web identity of %r failed unexpectedly", did[:200])
            return {**not_configured(did), "status": "unreachable", "reason": "resolver_error"}


def not_configured(did: str | None) -> dict[str, Any]:
    """The identity object of a credential with no did:web to check (or an INVALID receipt)."""
    return {
        "did": did,
        "domain": None,
        "location": None,
        "unicode_location": None,
        "url": None,
        "status": "not_configured",
        "reason": None,
    }
