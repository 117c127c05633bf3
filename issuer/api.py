"""The issuer HTTP API: submit certificates, read receipts and batches, revoke. Loopback by default.

It is a thin edge over the same service as the CLI: ``POST /certificates`` is :func:`ingest`
(the certificates wait as ``pending``), the :class:`BatchScheduler` seals and anchors them on its
timer, ``GET /certificates/{id}`` returns the receipt once the batch is anchored, and
``POST /revocations`` is the :class:`Revoker`.

- Authentication: ``Authorization: Bearer fvk_<id>_<secret>``, keys with scopes
  (:mod:`issuer.api_keys`). Models are in :mod:`issuer.api_models`; this module holds the routes,
  idempotency and the one mapping from errors to HTTP statuses.
- ``Idempotency-Key`` on POSTs: the same key with the same body replays the stored response
  (``Idempotent-Replayed: true``); with another body it is a 409. Keys are kept 24 hours.
- Errors all have one shape, ``{"error": {"code", "message", "correlation_id"}}`` (see
  :mod:`chain.service.web`), and request bodies are capped.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy import delete, select

from chain.core.canonical import DocumentError
from chain.core.errors import DataIntegrityError
from chain.errors import ChainMismatch, ConfigError, FinVaultError, RpcUnavailable, TransactionFailed
from chain.service.web import (
    BadRequest,
    Conflict,
    EdgeFastAPI,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimiter,
    bearer_token,
    error_response,
    error_schema,
    install_error_handlers,
    json_body_openapi,
    read_json,
    status_for,
)
from issuer.api_keys import Principal, authenticate
from issuer.api_models import (
    CERTIFICATES_BODY,
    ISSUE_BODY,
    MAX_CERTIFICATES_PER_REQUEST,
    RECORDS,
    ROOT_PATTERN,
    AcceptedCertificate,
    BatchView,
    CertificateView,
    DeliveryView,
    IntakeResponse,
    RejectedRecord,
    RevocationRequest,
    RevocationResponse,
    revocation_outcome,
    revocation_view,
)
from issuer.errors import IntakeRejected, NotAnchored, StoreError, UnknownApiKey, UnknownCertificate
from issuer.intake import Accepted, Record, validate
from issuer.outputs import receipt_stem
from issuer.revoke import Revoker, parse_reason
from issuer.scheduler import BatchScheduler
from issuer.scopes import Scope
from issuer.service import VC_API_PREFIX, IssuerService, ingest
from issuer.settings import IssuerApiSettings
from issuer.status import STATUS_DIR
from issuer.store import (
    Batch,
    Certificate,
    DeliveryStatus,
    IdempotencyKey,
    Revocation,
    Store,
    WebhookDelivery,
    utcnow,
)
from issuer.template import Template
from issuer.webhooks import WebhookDispatcher, delivery_view

IDEMPOTENCY_TTL = timedelta(hours=24)
_ROOT = re.compile(ROOT_PATTERN)
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": description, "content": {"application/json": {"schema": error_schema()}}}
    for status, description in {
        400: "Malformed request",
        401: "No valid API key",
        403: "The key lacks the scope",
        404: "Not found",
        409: "Idempotency-Key conflict, or state conflict",
        413: "Body too large",
        415: "Not application/json",
        422: "Invalid request",
        429: "Rate limited",
        503: "Chain unreachable",
    }.items()
}

#: One place where errors become HTTP statuses.
STATUSES: dict[type[FinVaultError], int] = {
    UnknownCertificate: 404,
    UnknownApiKey: 404,
    NotAnchored: 409,
    IntakeRejected: 422,
    DocumentError: 400,
    DataIntegrityError: 400,  # a credential its suite cannot secure (an undefined term, say)
    ConfigError: 422,
    StoreError: 409,
    TransactionFailed: 409,
    RpcUnavailable: 503,
    ChainMismatch: 503,
}


# -- the app -----------------------------------------------------------------------------------


@dataclass
class IssuerApi:
    """Everything the routes need: the store, the template, and (for revocations) the chain."""

    store: Store
    template: Template
    out_dir: Path
    service: IssuerService | None = None
    scheduler: BatchScheduler | None = None
    webhooks: WebhookDispatcher | None = None
    id_column: str = "id"
    now: Callable[[], datetime] = utcnow
    #: Serialises transactions from this account: the scheduler's anchors and our revocations.
    chain_lock: threading.Lock = field(default_factory=threading.Lock)

    # -- idempotency ---------------------------------------------------------------------------

    def _begin(self, principal: Principal, key: str, fingerprint: str) -> IdempotencyKey | None:
        with self.store.transaction() as session:
            session.execute(
                delete(IdempotencyKey).where(IdempotencyKey.created_at < self.now() - IDEMPOTENCY_TTL)
            )
            row = session.get(IdempotencyKey, (principal.key_id, key))
            if row is None:
                session.add(
                    IdempotencyKey(
                        api_key_id=principal.key_id, key=key, fingerprint=fingerprint, created_at=self.now()
                    )
                )
                return None
        if row.fingerprint != fingerprint:
            raise Conflict(
                "this Idempotency-Key was used with another request", code="idempotency_key_reused"
            )
        if row.status_code is None:
            raise Conflict(
                "a request with this Idempotency-Key is in progress", code="idempotency_in_progress"
            )
        return row

    def _finish(self, principal: Principal, key: str, response: JSONResponse | None) -> None:
        with self.store.transaction() as session:
            row = session.get_one(IdempotencyKey, (principal.key_id, key))
            if response is None or response.status_code >= 500:
                session.delete(row)  # not a final answer: the client may retry with the same key
                return
            row.status_code = response.status_code
            row.response = bytes(response.body).decode("utf-8")

    def idempotent(
        self,
        principal: Principal,
        key: str | None,
        request_id: str,
        body: bytes,
        work: Callable[[], JSONResponse],
    ) -> JSONResponse:
        """Runs ``work`` once per (API key, Idempotency-Key); replays its response afterwards."""
        if key is None:
            return work()
        if not _IDEMPOTENCY_KEY.match(key):
            raise BadRequest("Idempotency-Key must be 1 to 255 printable ASCII characters")
        fingerprint = hashlib.sha256(request_id.encode() + b"\n" + body).hexdigest()
        stored = self._begin(principal, key, fingerprint)
        if stored is not None:
            assert stored.status_code is not None
            assert stored.response is not None
            return JSONResponse(
                json.loads(stored.response),
                status_code=stored.status_code,
                headers={"Idempotent-Replayed": "true"},
            )
        response = None
        try:
            response = work()
            return response
        except FinVaultError as exc:
            response = _error_for_replay(exc)
            raise
        finally:
            self._finish(principal, key, response)

    # -- operations ----------------------------------------------------------------------------

    def submit(self, records: dict[str, Any] | list[dict[str, Any]], strict: bool) -> JSONResponse:
        """``POST /certificates``: stores the good records as pending (202); 422 if nothing is stored."""
        items = records if isinstance(records, list) else [records]
        if not items or len(items) > MAX_CERTIFICATES_PER_REQUEST:
            raise BadRequest(f"send 1 to {MAX_CERTIFICATES_PER_REQUEST:,} certificates per request")
        rows = (Record(index, item) for index, item in enumerate(items, 1))
        results = list(validate(rows, self.template, id_column=self.id_column))
        report = ingest(self.store, results, strict=strict, now=self.now)
        rejected = [
            RejectedRecord(index=r.line, id=r.certificate_id, reason=r.reason) for r in report.rejected
        ]
        refused = {r.index for r in rejected}
        stored = [r for r in results if isinstance(r, Accepted) and r.line not in refused]
        if not stored:
            reasons = "; ".join(f"#{r.index}: {r.reason}" for r in rejected[:3])
            raise InvalidRequest(f"no certificate accepted ({reasons})", code="certificates_rejected")
        body = IntakeResponse(
            accepted=[AcceptedCertificate(id=r.certificate_id, status="pending") for r in stored],
            rejected=rejected,
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=202)

    def certificate(self, certificate_id: str) -> CertificateView:
        """``GET /certificates/{id}``: status, receipt once anchored, revocation (its own or its batch's)."""
        with self.store.reading() as session:
            found = session.get(Certificate, certificate_id)
            if found is None:
                raise NotFound(f"no certificate {certificate_id!r}")
            revocation = (
                session.scalar(
                    select(Revocation)
                    .where(
                        Revocation.batch_root == found.batch_root,
                        (Revocation.certificate_id == certificate_id) | Revocation.certificate_id.is_(None),
                    )
                    .order_by(Revocation.block_number)
                    .limit(1)
                )
                if found.batch_root
                else None
            )
        receipt = None
        if found.status in ("anchored", "revoked"):
            path = self.out_dir / f"{receipt_stem(certificate_id)}.json"
            try:
                receipt = json.loads(path.read_bytes())
            except OSError:
                raise StoreError(
                    f"the receipt of {certificate_id!r} is missing from {self.out_dir}"
                ) from None
        return CertificateView(
            id=found.id,
            status=str(found.status),
            leaf=found.leaf,
            digest=found.digest,
            batch=found.batch_root,
            created_at=found.created_at,
            receipt=receipt,
            revocation=revocation_view(revocation) if revocation else None,
        )

    def issue_credential(self, credential: dict[str, Any]) -> JSONResponse:
        """``POST /credentials/issue`` (W3C VC-API): the credential secured at once (201), queued for
        the next anchored batch as a certificate ``vcapi-<uuid>``."""
        if self.service is None:
            raise Conflict("this issuer API runs without a signing key: it cannot issue", code="read_only")
        serial = uuid.uuid4()
        document = {"id": f"urn:uuid:{serial}", **credential} if "id" not in credential else credential
        certificate_id = f"{VC_API_PREFIX}{serial}"
        issued = self.service.issue_now(certificate_id, document)
        location = {"Location": f"/certificates/{certificate_id}"}  # where its receipt will be
        return JSONResponse({"verifiableCredential": issued}, status_code=201, headers=location)

    def status_list(self, name: str, if_none_match: str | None) -> Response:
        """``GET /status/{name}``: the file publishing wrote, with an ETag and cache headers."""
        path = self.out_dir / STATUS_DIR / f"{name}.json"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no status list {name!r}") from None
        etag = f'"{hashlib.sha256(data).hexdigest()[:32]}"'
        headers = {"Cache-Control": f"public, max-age={STATUS_MAX_AGE}", "ETag": etag}
        if if_none_match is not None and _etag_matches(if_none_match, etag):
            return Response(status_code=304, headers=headers)
        return Response(data, media_type="application/json", headers=headers)

    def batch(self, root: str) -> BatchView:
        """``GET /batches/{root}`` (lowercase): the batch, its anchoring, and any whole-batch revocation."""
        if not _ROOT.match(root):
            raise BadRequest("a batch root is 0x and 64 lowercase hex digits")
        with self.store.reading() as session:
            found = session.get(Batch, root)
            if found is None:
                raise NotFound(f"no batch {root}")
            revocation = session.scalar(
                select(Revocation).where(Revocation.batch_root == root, Revocation.certificate_id.is_(None))
            )
        return BatchView(
            root=found.root,
            status=str(found.status),
            leaf_count=found.leaf_count,
            key_id=found.key_id,
            manifest_uri=found.manifest_uri,
            tx_hash=found.tx_hash,
            block_number=found.block_number,
            gas_used=found.gas_used,
            error=found.error,
            sealed_at=found.sealed_at,
            anchored_at=found.anchored_at,
            revocation=revocation_view(revocation) if revocation else None,
        )

    def revoke(self, request: RevocationRequest) -> JSONResponse:
        """``POST /revocations``: revokes on-chain under ``chain_lock``; 409 ``read_only`` without a chain."""
        if (request.certificate_ids is None) == (request.batch is None):
            raise InvalidRequest("name certificate_ids or batch (one of the two)")
        if self.service is None:
            raise Conflict("this issuer API runs without chain access: it cannot revoke", code="read_only")
        reason = parse_reason(str(request.reason))
        revoker = Revoker(
            self.store, self.service.registry, now=self.now, status_lists=self.service.status_lists
        )
        with self.chain_lock:
            if request.batch is not None:
                results = [revoker.revoke_batch(request.batch, reason)]
            else:
                results = revoker.revoke_certificates(request.certificate_ids or [], reason)
        body = RevocationResponse(results=[revocation_outcome(result) for result in results])
        return JSONResponse(body.model_dump(mode="json"), status_code=200)

    def deliveries(self, status: DeliveryStatus, limit: int) -> list[DeliveryView]:
        """Up to ``limit`` webhook deliveries in ``status``, the latest ``next_attempt_at`` first."""
        with self.store.reading() as session:
            rows = session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.status == status)
                .order_by(WebhookDelivery.next_attempt_at.desc(), WebhookDelivery.event_id.desc())
                .limit(limit)
            ).all()
        return [DeliveryView(**delivery_view(row)) for row in rows]


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison of an ``If-None-Match`` list (or ``*``) with ``etag``."""
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def _error_for_replay(exc: FinVaultError) -> JSONResponse | None:
    """The stored answer for a request that failed with a client error; None for anything else."""
    status = status_for(exc, STATUSES)
    return error_response(status, exc.code, exc.message) if status < 500 else None


def _scope(scope: Scope) -> Any:
    async def check(request: Request) -> Principal:
        api: IssuerApi = request.app.state.issuer_api
        principal = await run_in_threadpool(authenticate, api.store, bearer_token(request))
        if scope not in principal.scopes:
            raise Forbidden(f"this API key lacks the {scope!r} scope")
        return principal

    return Depends(check)


IssueKey = Annotated[Principal, _scope("issue")]
RevokeKey = Annotated[Principal, _scope("revoke")]
ReadKey = Annotated[Principal, _scope("read")]
#: Documented, not enforced by FastAPI: a malformed root is the API's own 400, in any case of hex.
BatchRoot = Annotated[
    str,
    PathParam(
        description="The batch's Merkle root: 0x and 64 hex digits.",
        json_schema_extra={"pattern": r"^0x[0-9a-fA-F]{64}$"},
    ),
]
StatusListName = Annotated[
    str,
    PathParam(
        description="A status list's number (N), or N.leaves for its companion.",
        pattern=r"^[1-9][0-9]{0,8}(\.leaves)?$",
    ),
]
#: Seconds a status list may be cached: a revocation shows within this.
STATUS_MAX_AGE = 300
IdempotencyHeader = Annotated[
    str | None, Header(alias="Idempotency-Key", description="Replays the first response for this key.")
]


def create_app(settings: IssuerApiSettings, api: IssuerApi) -> FastAPI:
    """The issuer API over ``api``, as ``settings`` configure its edge (body cap, rate limit); the
    lifespan starts and stops its scheduler and webhooks."""
    max_body_bytes = settings.issuer_api_max_body
    # What parsing a body may build, bounded before it runs: a record of the templates' columns is
    # one JSON value per 20-odd bytes; a dense `[[],[],...]` is one per 3, at 50 bytes of memory each.
    max_values = max_body_bytes // 8
    limiter = (
        RateLimiter(settings.issuer_api_rate, settings.issuer_api_burst) if settings.issuer_api_rate else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if api.scheduler is not None:
            api.scheduler.start()
        if api.webhooks is not None:
            api.webhooks.start()
        try:
            yield
        finally:
            if api.scheduler is not None:
                api.scheduler.shutdown()
            if api.webhooks is not None:
                api.webhooks.shutdown()

    app = EdgeFastAPI(
        edge={
            "max_body_bytes": max_body_bytes,
            "body_timeout": settings.http_body_timeout,
            "limiter": limiter,
            "unlimited_paths": ("/health",),
        },
        title="FinVault issuer API",
        version="1",
        description="Submit certificates, fetch receipts and batches, revoke. Bearer API keys with scopes.",
        lifespan=lifespan,
        responses=_ERRORS,
        # No interactive docs: FastAPI's load an unpinned swagger-ui from a CDN, with no integrity
        # check, into this origin (docs/SECURITY.md). /openapi.json stays for any viewer.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app, STATUSES)
    app.state.issuer_api = api

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.post(
        "/certificates",
        status_code=202,
        response_model=IntakeResponse,
        tags=["certificates"],
        openapi_extra=json_body_openapi(CERTIFICATES_BODY),
    )
    async def submit_certificates(
        request: Request,
        principal: IssueKey,
        idempotency_key: IdempotencyHeader = None,
        strict: Annotated[bool, Query(description="Store nothing if any record is bad.")] = False,
    ) -> JSONResponse:
        """Stores one record (an object) or several (an array) as pending certificates.

        The records are the template's columns. Bad records are listed with their 1-based index and
        the good ones kept (``strict``: nothing is stored if any is bad). The certificates are
        anchored with the next batch; ``GET /certificates/{id}`` then returns the receipt.
        """
        payload = await read_json(request, max_bytes=max_body_bytes, max_values=max_values)
        raw = await request.body()
        try:
            records = RECORDS.validate_python(payload)
        except ValidationError:
            raise InvalidRequest("send a record object or an array of them") from None
        fingerprint = f"POST /certificates?strict={strict}"
        return await run_in_threadpool(
            api.idempotent, principal, idempotency_key, fingerprint, raw, lambda: api.submit(records, strict)
        )

    @app.get("/certificates/{certificate_id}", response_model=CertificateView, tags=["certificates"])
    def get_certificate(certificate_id: str, principal: ReadKey) -> CertificateView:
        """A certificate's status, with its receipt once anchored and its revocation if any."""
        return api.certificate(certificate_id)

    @app.post(
        "/credentials/issue",
        status_code=201,
        tags=["vc-api"],
        responses={201: {"description": "{verifiableCredential}: the credential, secured."}},
        openapi_extra=json_body_openapi(ISSUE_BODY),
    )
    async def issue_credential(
        request: Request, principal: IssueKey, idempotency_key: IdempotencyHeader = None
    ) -> JSONResponse:
        """W3C VC-API issuance: ``{credential, options}`` -> ``{verifiableCredential}``.

        The credential (a VC 2.0 credential; refused with the rule it breaks otherwise) is secured at
        once with an ``eddsa-jcs-2022`` proof by the issuer's key, its ``issuer`` set to the
        issuer's DID and, when status lists are on, a ``credentialStatus`` entry added. It is stored
        as a pending certificate (``vcapi-<uuid>``) and anchored with the next batch; its receipt
        commits to exactly what this returns. ``Location`` names the certificate (its receipt, once
        anchored); an ``Idempotency-Key`` replays the first answer instead of issuing twice.
        """
        payload = await read_json(request, max_bytes=max_body_bytes, max_values=max_values)
        raw = await request.body()
        if not isinstance(payload, dict) or not isinstance(payload.get("credential"), dict):
            raise BadRequest('send {"credential": {...}, "options": {...}}')
        if not isinstance(payload.get("options", {}), dict) or set(payload) - {"credential", "options"}:
            raise BadRequest('send {"credential": {...}, "options": {...}} and nothing else')
        credential = payload["credential"]
        return await run_in_threadpool(
            api.idempotent, principal, idempotency_key, "POST /credentials/issue", raw,
            lambda: api.issue_credential(credential),
        )  # fmt: skip

    @app.get(
        "/status/{list_name}",
        tags=["status"],
        responses={200: {"description": "The BitstringStatusListCredential, or its leaves companion."}},
    )
    def get_status_list(list_name: StatusListName, request: Request) -> Response:
        """A published Bitstring Status List (``N``), or its ``N.leaves`` companion: public, no key,
        cacheable for five minutes (a revocation shows within that; the chain is the truth at once)."""
        return api.status_list(list_name, request.headers.get("if-none-match"))

    @app.get("/batches/{root}", response_model=BatchView, tags=["batches"])
    def get_batch(root: BatchRoot, principal: ReadKey) -> BatchView:
        """A batch: size, anchoring transaction and block, revocation."""
        return api.batch(root.lower())

    @app.post(
        "/revocations",
        response_model=RevocationResponse,
        tags=["revocations"],
        openapi_extra=json_body_openapi(RevocationRequest.model_json_schema()),
    )
    async def revoke(
        request: Request,
        principal: RevokeKey,
        idempotency_key: IdempotencyHeader = None,
    ) -> JSONResponse:
        """Revokes certificates (one transaction per batch, multiproofs) or a whole batch.

        Idempotent on-chain too: what is already revoked is reported as such, with no transaction.
        """
        payload = await read_json(request, max_bytes=max_body_bytes, max_values=max_values)
        raw = await request.body()
        try:
            parsed = RevocationRequest.model_validate(payload)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "body"
            raise InvalidRequest(f"{where}: {problem['msg']}") from None
        return await run_in_threadpool(
            api.idempotent, principal, idempotency_key, "POST /revocations", raw, lambda: api.revoke(parsed)
        )

    @app.get("/webhooks/deliveries", response_model=list[DeliveryView], tags=["webhooks"])
    def webhook_deliveries(
        principal: ReadKey,
        status: DeliveryStatus = DeliveryStatus.DEAD,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[DeliveryView]:
        """Webhook deliveries by status, newest first; ``dead`` ones are the dead letters."""
        return api.deliveries(status, limit)

    return app
