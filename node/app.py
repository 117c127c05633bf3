"""The verification node's HTTP API, built by a factory: ``create_app(runtime)`` (the runtime carries
the node's settings and its mirror). Metrics are in :mod:`node.metrics`, the web page in :mod:`node.page`.

Every answer comes from the mirror through the same pure :func:`chain.core.verify.verify` that
``finvault verify --rpc`` uses, and names the mirror state it was judged at (``as_of``). A receipt
that is tampered with, revoked, unknown, for another chain or not a receipt at all gets a verdict
(HTTP 200); a request the node cannot read (wrong content type, broken JSON, too large, too many)
gets an error, in the one shape ``{"error": {"code", "message", "correlation_id"}}`` of
:mod:`chain.service.web`. While the mirror cannot vouch (:mod:`node.health`), verification answers 503
with the condition's code, ``Retry-After``, and only the checks that depend on the document alone.

At the edge (:class:`chain.service.web.EdgeMiddleware`, outermost, so even a 500 carries it): a
correlation id on every response, the body limit, per-client rate limits. CORS is off unless
origins are listed. ``/metrics`` is for loopback clients, or others with the bearer token.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter as Tally
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import OperationalError

from chain.core.canonical import MAX_SAFE_INTEGER
from chain.core.credential_checks import CredentialResult, Finding, check_bare_credential
from chain.core.data_integrity import EDDSA_RDFC_2022
from chain.core.encoding import iso_utc
from chain.core.jsonld import JSONLD_LEAST_CHARGE, JSONLD_VALUE_WEIGHT, values_in
from chain.core.receipt import MAX_RECEIPT_BYTES, MAX_RECEIPT_VALUES, receipt_size
from chain.core.verify import DOCUMENT_CHECKS, Check, Verdict, finality, malformed
from chain.did_web import IdentityResolver
from chain.errors import ChainMismatch, ConfigError, FinVaultError, RpcError, RpcUnavailable
from chain.service.failures import failure_reason
from chain.service.web import (
    BadRequest,
    EdgeFastAPI,
    Forbidden,
    HttpError,
    InvalidRequest,
    NotFound,
    RateLimiter,
    RequestOnlyRoute,
    Unauthorized,
    bearer_token,
    correlation_id,
    digest_matches,
    error_response,
    install_error_handlers,
    is_loopback,
    json_body_openapi,
    read_json,
    token_digest,
)
from indexer.errors import IndexerError
from node.audit import audit_router
from node.cursor import Position, decode_cursor, encode_cursor
from node.health import CannotVouch, as_of
from node.metrics import FIXED_PATHS, NodeMetrics, Timing
from node.models import (
    REFUSAL_DOC,
    AnchorOut,
    BulkOut,
    CredentialRefusedOut,
    CredentialVerifyOut,
    HealthOut,
    IssuerDetailOut,
    IssuersOut,
    ReadyOut,
    RefusalOut,
    RevocationsPage,
    StatusOut,
    VerdictOut,
    bulk_schema,
    credential_verify_schema,
    error_response_doc,
    receipt_schema,
)
from node.offloop import OffLoop
from node.page import STATIC_DIR, mount_page
from node.runtime import Runtime, not_ready
from node.state import SyncSnapshot

T = TypeVar("T")
#: Paths never rate-limited: probes and scrapers poll them.
UNLIMITED_PATHS = ("/health", "/ready", "/metrics")
MAX_PAGE = 1_000

ERROR_STATUSES: Mapping[type[FinVaultError], int] = {
    RpcUnavailable: 503,
    RpcError: 502,
    ChainMismatch: 503,
    IndexerError: 503,
    ConfigError: 500,
}


class TooManyReceipts(HttpError):
    """413: a ``POST /verify/bulk`` with more receipts than ``bulk_limit``, however small its body."""

    code, status = "too_many_receipts", 413


class TooMuchWork(HttpError):
    """413: a ``POST /verify/bulk`` whose credentials cost more than its work budget to check."""

    code, status = "too_much_work", 413


def _charge_rdfc(receipts: list[Any], budget: int) -> None:
    """Raises :class:`TooMuchWork` when the ``eddsa-rdfc-2022`` credentials among ``receipts``,
    each JSON value of them weighing :data:`~chain.core.jsonld.JSONLD_VALUE_WEIGHT` values (and each
    credential at least :data:`~chain.core.jsonld.JSONLD_LEAST_CHARGE`), exceed the bulk ``budget``:
    their JSON-LD expansion and canonicalization cost that much more than JCS."""
    charged = 0
    for receipt in receipts:
        credential = receipt.get("credential") if isinstance(receipt, dict) else None
        proof = credential.get("proof") if isinstance(credential, dict) else None
        if isinstance(proof, dict) and proof.get("cryptosuite") == EDDSA_RDFC_2022:
            charged += max(JSONLD_LEAST_CHARGE, JSONLD_VALUE_WEIGHT * values_in(credential, budget))
            if charged > budget:
                raise TooMuchWork(
                    f"the eddsa-rdfc-2022 credentials of this call cost more than its budget of "
                    f"{budget:,} JSON values (each of their values counts {JSONLD_VALUE_WEIGHT}): "
                    "send fewer at once"
                )


#: Bulk calls a worker admits at once per turn (``bulk_concurrency``): reading their bodies, waiting
#: for a turn, or running. One more is 503 busy before its body is read, so waiting calls hold at
#: most this many bodies (8 MiB each at the default limit), whatever the connections.
BULK_ADMITTED_PER_TURN = 4
#: The longest a POST /verify/bulk waits for a turn (``bulk_concurrency``) before it gets 503.
BULK_WAIT_SECONDS = 5.0
#: The Retry-After of a 503 ``busy`` bulk call.
BUSY_RETRY_AFTER = 1


def _package_version() -> str:
    try:
        return version("finvault")
    except PackageNotFoundError:
        return "0"


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    # msgspec writes the compact UTF-8 json.dumps(ensure_ascii=False) would, ten times faster (19
    # to 2 us for a verdict: 3% of a cold verification). Every value here is the node's own or
    # came through loads_strict, so no NaN, no lone surrogate, no integer past 2**53 is met.
    body = msgspec.json.encode(data)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    what = {
        400: "Unreadable request: broken JSON, or an invalid cursor.",
        401: "A bearer token is required.",
        403: "Not allowed from this client.",
        404: "Not in the mirror.",
        413: "Request body (or receipt count) over the limit.",
        415: "The body must be application/json (UTF-8).",
        422: "Invalid parameters.",
        429: "Rate limited: see Retry-After.",
    }
    return {status: error_response_doc(what[status]) for status in statuses}


def create_app(runtime: Runtime, *, static_dir: Path | None = STATIC_DIR) -> FastAPI:
    """The node's app over ``runtime``, a reader of its mirror (the caller closes the runtime)."""
    settings = runtime.settings
    off_loop = OffLoop(settings.verification_threads)
    # a thread per bulk turn: singles never wait behind one
    bulk_loop = OffLoop(settings.bulk_concurrency, name="finvault-bulk")
    metrics = NodeMetrics(runtime)

    identities = IdentityResolver.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            await identities.aclose()
            off_loop.close()
            bulk_loop.close()

    app = EdgeFastAPI(
        edge={
            "max_body_bytes": settings.max_body_bytes,
            "body_timeout": settings.http_body_timeout,
            "limiter": RateLimiter(settings.rate_limit, settings.burst) if settings.rate_limit > 0 else None,
            "limit_loopback": settings.rate_limit_loopback,
            "unlimited_paths": UNLIMITED_PATHS,
        },
        title="FinVault verification node",
        version=_package_version(),
        description=(
            "Verifies finvault-receipt/2 (and legacy /1) receipts against this node's mirror of the "
            "FinVault registry; POST /credentials/verify (W3C VC-API) checks a bare credential's proof, "
            "VC 2.0 data model and validity. "
            'Errors are `{"error": {"code", "message", "correlation_id"}}`; every response carries '
            "`X-Correlation-ID`."
        ),
        lifespan=lifespan,
        # No interactive docs: FastAPI's load an unpinned swagger-ui from a CDN, with no integrity
        # check, into this origin (docs/SECURITY.md). /openapi.json stays for any viewer.
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    admin_digest = token_digest(settings.admin_token.get_secret_value()) if settings.admin_token else None
    app.state.metrics = metrics
    install_error_handlers(app, ERROR_STATUSES)

    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(
            503,
            "database_unavailable",
            f"the mirror database is unavailable ({failure_reason(exc)}); retry shortly",
        )

    app.add_exception_handler(OperationalError, on_database_error)
    app.add_middleware(Timing, histogram=metrics.latency, fixed_paths=FIXED_PATHS)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization", "X-Request-ID", "X-Correlation-ID"],
            expose_headers=["X-Correlation-ID", "Retry-After"],
            max_age=600,
        )
    _verification_routes(app, runtime, metrics, identities, (off_loop, bulk_loop))
    _credential_routes(app, runtime, off_loop)
    _mirror_routes(app, runtime)
    _operations_routes(app, runtime, metrics, off_loop)
    # Routes are matched in order: the verification routes, the hot ones, come first.
    app.include_router(audit_router(lambda request: runtime.read_engine, lambda request: admin_digest))
    # The web page, mounted only when node/static/ exists: index.html answers `/` and `/v/{leaf}`
    # (the link a receipt's QR code carries); every other file there is served under /static/.
    if static_dir is not None and static_dir.is_dir():
        mount_page(app, static_dir)
    return app


def _verification_routes(
    app: FastAPI,
    runtime: Runtime,
    metrics: NodeMetrics,
    identities: IdentityResolver,
    pools: tuple[OffLoop, OffLoop],
) -> None:
    """``POST /verify`` and ``POST /verify/bulk``: verdicts from the mirror (with the issuer's
    checked identity beside them), or 503 while the mirror cannot vouch."""
    settings = runtime.settings
    single_limit = min(settings.max_body_bytes, MAX_RECEIPT_BYTES)
    off_loop, bulk_loop = pools
    routes = APIRouter(route_class=RequestOnlyRoute)  # the hot path: endpoints called straight

    def judged(receipt: Any, now: datetime) -> tuple[Verdict, SyncSnapshot]:
        return runtime.view.verify(receipt, now, runtime.policy)

    def refused(problem: CannotVouch, state: SyncSnapshot, verdict: Verdict | None) -> Response:
        metrics.refusals.labels(problem.code).inc()
        body = {
            "error": {
                "code": problem.code,
                "message": problem.reason,
                "correlation_id": correlation_id.get(),
            },
            "as_of": as_of(state),
            "retry_after": problem.retry_after,
        }
        if verdict is not None:
            body["document_checks"] = [_check_dict(c) for c in verdict.checks if c.name in DOCUMENT_CHECKS]
        return _json(body, status=503, headers={"Retry-After": str(problem.retry_after)})

    @routes.post(
        "/verify",
        response_model=None,
        summary="Verify one receipt",
        responses={
            200: {"model": VerdictOut, "description": "The verdict, and the mirror state it was judged at."},
            **_errors(400, 413, 415, 429),
            503: {"model": RefusalOut, "description": REFUSAL_DOC},
        },
        openapi_extra=json_body_openapi(receipt_schema()),
    )
    async def verify_receipt(request: Request) -> Response:
        body = await read_json(request, max_bytes=single_limit, max_values=MAX_RECEIPT_VALUES)
        now = datetime.now(UTC)
        verdict, state = await off_loop.run(judged, _as_receipt(body), now)
        problem = runtime.cannot_vouch(state)
        if problem is not None:
            return refused(problem, state, verdict)
        metrics.verified(verdict.status)
        answer = verdict_dict(verdict, iso_utc(now), as_of(state))
        answer["identity"] = await identities.identity(verdict, settings.chain_id)
        return _json(answer)

    bulk_turns = asyncio.Semaphore(settings.bulk_concurrency)
    bulk_admitted = [0]  # calls reading a body, waiting for a turn or running (one event loop)

    @routes.post(
        "/verify/bulk",
        response_model=None,
        summary=f"Verify up to {settings.bulk_limit:,} receipts",
        responses={
            200: {"model": BulkOut, "description": "Verdicts, in request order."},
            **_errors(400, 413, 415, 422, 429),
            503: {"model": RefusalOut, "description": REFUSAL_DOC},
        },
        openapi_extra=json_body_openapi(bulk_schema(settings.bulk_limit)),
    )
    async def verify_bulk(request: Request) -> Response:
        if bulk_admitted[0] >= BULK_ADMITTED_PER_TURN * settings.bulk_concurrency:
            raise _bulk_busy(settings.bulk_concurrency)
        bulk_admitted[0] += 1
        try:
            # The body is read before the turn is taken (so a client that sends it slowly holds no
            # turn), and parsed after: a waiting call holds its bytes, not the objects they make.
            await request.body()
            try:
                await asyncio.wait_for(bulk_turns.acquire(), BULK_WAIT_SECONDS)
            except TimeoutError:
                raise _bulk_busy(settings.bulk_concurrency) from None
            try:
                return await bulk(request)
            finally:
                bulk_turns.release()
        finally:
            bulk_admitted[0] -= 1

    async def bulk(request: Request) -> Response:
        body = await read_json(
            request, max_bytes=settings.max_body_bytes, max_values=settings.bulk_max_values
        )
        receipts = body.get("receipts") if isinstance(body, dict) else None
        if not isinstance(receipts, list) or not receipts or set(body) != {"receipts"}:
            raise InvalidRequest('the body must be {"receipts": [receipt, ...]} with at least one receipt')
        if len(receipts) > settings.bulk_limit:
            raise TooManyReceipts(f"{len(receipts):,} receipts; at most {settings.bulk_limit:,} per request")
        now = datetime.now(UTC)
        state = await off_loop.run(runtime.snapshot)
        problem = runtime.cannot_vouch(state)
        if problem is not None:  # before the work: a refusal reports no per-receipt checks
            return refused(problem, state, None)
        # Each receipt within a receipt's own limits, as on /verify: one over them is INVALID.
        sized = len(await request.body()) > MAX_RECEIPT_BYTES

        def judge_all() -> list[tuple[Verdict, SyncSnapshot]]:
            _charge_rdfc(receipts, settings.bulk_max_values)
            return [judged(_as_receipt(receipt, sized=sized), now) for receipt in receipts]

        judgements = await bulk_loop.run(judge_all)
        for _, state in judgements:
            problem = runtime.cannot_vouch(state)
            if problem is not None:
                return refused(problem, state, None)
        checked_at = iso_utc(now)
        metrics.count(verdict for verdict, _ in judgements)
        results = [verdict_dict(verdict, checked_at, as_of(state)) for verdict, state in judgements]
        found = await asyncio.gather(
            *(
                identities.identity(verdict, settings.chain_id)
                for receipt, (verdict, _) in zip(receipts, judgements, strict=True)
            )
        )  # at once: one unreachable domain costs the whole request one timeout, not one per receipt
        for result, identity in zip(results, found, strict=True):
            result["identity"] = identity
        summary = dict(Tally(str(verdict.status) for verdict, _ in judgements))
        return _json({"count": len(results), "summary": summary, "results": results})

    app.include_router(routes)


#: How many ignored ``options`` a warning names.
SHOWN_OPTIONS = 8


def _credential_routes(app: FastAPI, runtime: Runtime, off_loop: OffLoop) -> None:
    """``POST /credentials/verify`` (W3C VC-API): a bare credential's own checks. Nothing it answers
    depends on the mirror, so it answers whether or not the mirror can vouch; what only the chain
    can say (revocation) is a warning pointing to ``POST /verify``."""
    single_limit = min(runtime.settings.max_body_bytes, MAX_RECEIPT_BYTES)
    signatures = runtime.view.signatures

    @app.post(
        "/credentials/verify",
        response_model=None,
        summary="Verify a bare credential (W3C VC-API): proof, VC 2.0 data model, validity",
        responses={
            200: {
                "model": CredentialVerifyOut,
                "description": "Verified; `warnings` say what was not checked.",
            },
            400: {
                "model": CredentialRefusedOut,
                "description": "Not verified, or not a credential: `errors` (VC-API), `error` (the node's).",
            },
            **_errors(413, 415, 429),
        },
        openapi_extra=json_body_openapi(credential_verify_schema()),
    )
    async def verify_credential(request: Request) -> Response:
        now = datetime.now(UTC)
        try:
            body = await read_json(request, max_bytes=single_limit, max_values=MAX_RECEIPT_VALUES)
        except BadRequest as exc:  # broken JSON: a 400 in the VC-API shape too
            return _credential_answer(
                CredentialResult((), (), (Finding("input", exc.code, exc.message),)), now
            )
        credential, ignored = _bare_credential(body)
        if isinstance(credential, Finding):
            return _credential_answer(CredentialResult((), (), (credential,)), now)
        result = await off_loop.run(check_bare_credential, credential, now, signatures)
        if ignored:
            shown = ", ".join(name[:40] for name in ignored[:SHOWN_OPTIONS])
            more = f" and {len(ignored) - SHOWN_OPTIONS} more" if len(ignored) > SHOWN_OPTIONS else ""
            note = Finding("input", "options_ignored", f"options not supported, ignored: {shown}{more}")
            result = CredentialResult(result.checks, (*result.warnings, note), result.errors)
        return _credential_answer(result, now)


def _bare_credential(body: Any) -> tuple[dict[str, Any] | Finding, list[str]]:
    """The body's credential and the names of its (ignored) options, or the :class:`Finding` that
    says why the body is not ``{"verifiableCredential": {...}, "options": {...}}``."""
    shape = 'the body must be {"verifiableCredential": {...}, "options": {...}} (options optional)'
    if (
        not isinstance(body, dict)
        or "verifiableCredential" not in body
        or set(body) - {"verifiableCredential", "options"}
    ):
        return Finding("input", "invalid_input", shape), []
    options = body.get("options", {})
    if not isinstance(options, dict):
        return Finding("input", "invalid_input", "options must be an object"), []
    credential = body["verifiableCredential"]
    if isinstance(credential, str) and "~" in credential:
        return Finding(
            "input",
            "sd_jwt_not_accepted",
            "verifiableCredential is an SD-JWT: this endpoint takes a bare JSON credential with a Data "
            "Integrity proof; an SD-JWT is verified from its finvault-receipt/2 receipt at POST /verify",
        ), []
    if not isinstance(credential, dict):
        return Finding(
            "input",
            "invalid_input",
            "verifiableCredential must be a JSON object (a JWT or SD-JWT is verified from its receipt at "
            "POST /verify)",
        ), []
    return credential, list(options)


def _credential_answer(result: CredentialResult, now: datetime) -> Response:
    """200 when verified; else 400 with the VC-API shape and the node's error object beside it."""

    def finding(f: Finding) -> dict[str, str]:
        return {"check": f.check, "code": f.code, "message": f.message}

    body: dict[str, Any] = {
        "verified": result.verified,
        "checks": list(result.checks),
        "warnings": [finding(f) for f in result.warnings],
        "errors": [finding(f) for f in result.errors],
        "checked_at": iso_utc(now),
    }
    if result.verified:
        return _json(body)
    first = result.errors[0]
    body["error"] = {"code": first.code, "message": first.message, "correlation_id": correlation_id.get()}
    return _json(body, status=400)


def _mirror_routes(app: FastAPI, runtime: Runtime) -> None:
    """What the mirror holds: anchors, issuers and their keys, revocations (paged)."""

    @app.get(
        "/anchors/{root}",
        response_model=AnchorOut,
        summary="An anchored batch root",
        responses=_errors(404, 422, 429),
    )
    def get_anchor(root: Annotated[str, PathParam(pattern=r"^0x[0-9a-fA-F]{64}$")]) -> dict[str, Any]:
        anchor = runtime.view.anchor(bytes.fromhex(root[2:]))
        if anchor is None:
            raise NotFound(
                f"root {root.lower()} is not anchored in this registry (as far as this mirror knows)"
            )
        confirmations, final, _ = finality(anchor["event"]["block_number"], runtime.head(), runtime.policy)
        return {
            **anchor,
            "anchored_at": iso_utc(anchor["timestamp"]),
            "confirmations": confirmations,
            "final": final,
        }

    @app.get(
        "/issuers",
        response_model=IssuersOut,
        summary="Every issuer, its status and keys",
        responses=_errors(429),
    )
    def list_issuers() -> dict[str, Any]:
        return {"issuers": runtime.view.issuers()}

    @app.get(
        "/issuers/{address}",
        response_model=IssuerDetailOut,
        summary="One issuer, its status and keys",
        responses=_errors(404, 422, 429),
    )
    def get_issuer(address: Annotated[str, PathParam(pattern=r"^0x[0-9a-fA-F]{40}$")]) -> dict[str, Any]:
        found = runtime.view.issuers(address.lower())
        if not found:
            raise NotFound(f"issuer {address.lower()} is not registered")
        return found[0]

    @app.get(
        "/revocations",
        response_model=RevocationsPage,
        summary="Revocations in chain order, a page at a time",
        responses=_errors(400, 422, 429),
    )
    def list_revocations(
        since_block: Annotated[int, Query(ge=0, le=MAX_SAFE_INTEGER, description="First block to list.")] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        cursor: Annotated[
            str | None,
            Query(max_length=256, description="next_cursor of the previous page; it carries since_block."),
        ] = None,
    ) -> dict[str, Any]:
        after = None
        if cursor is not None:
            position = decode_cursor(runtime.cursor_key, cursor)
            since_block, after = position.since_block, (position.block_number, position.log_index)
        rows = runtime.view.revocations(after, since_block, limit)
        for row in rows:
            row["revoked_at"] = iso_utc(row["timestamp"])
        next_cursor = None
        if len(rows) == limit:
            last = rows[-1]["event"]
            next_cursor = encode_cursor(
                runtime.cursor_key, Position(since_block, last["block_number"], last["log_index"])
            )
        return {"revocations": rows, "next_cursor": next_cursor}


def _operations_routes(app: FastAPI, runtime: Runtime, metrics: NodeMetrics, off_loop: OffLoop) -> None:
    """Liveness, readiness, status (chain, mirror, accumulators) and Prometheus metrics."""
    settings = runtime.settings
    metrics_digest = (
        token_digest(settings.metrics_token.get_secret_value()) if settings.metrics_token else None
    )

    @app.get("/health", response_model=HealthOut, summary="Liveness: the process answers")
    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        response_model=ReadyOut,
        summary="Readiness: synced, RPC healthy, right chain",
        responses={503: {"model": ReadyOut, "description": "Not ready; `reasons` says why."}},
    )
    async def ready() -> Response:
        reasons = await off_loop.run(runtime.not_ready)
        if not reasons:
            return _json({"ready": True, "reasons": []})
        body = json.loads(bytes(error_response(503, "not_ready", "; ".join(reasons)).body))
        return _json({"ready": False, "reasons": reasons, **body}, status=503)

    @app.get(
        "/status", response_model=StatusOut, summary="Chain, mirror and accumulators", responses=_errors(429)
    )
    def status() -> dict[str, Any]:
        sync = runtime.snapshot()
        problem = runtime.cannot_vouch(sync)
        checkpoint = runtime.view.checkpoint()
        counts = {"anchors": 0, "revocations": 0, "issuers": 0, "keys": 0}
        mirror: dict[str, Any] = {"block_number": 0}
        contract = None
        if checkpoint is not None:
            counts = {name: checkpoint[name] for name in counts}
            mirror = {
                "block_number": checkpoint["block_number"],
                "anchor_accumulator": checkpoint["anchor_accumulator"],
                "revocation_accumulator": checkpoint["revocation_accumulator"],
                "anchors": checkpoint["anchors"],
                "revocations": checkpoint["revocations"],
            }
            contract = runtime.contract_accumulators(checkpoint["block_number"])
        match = None
        if contract is not None and "error" not in contract:
            match = all(contract[k] == mirror[k] for k in ("anchor_accumulator", "revocation_accumulator"))
        return {
            "chain_id": runtime.settings.chain_id,
            "registry": runtime.registry,
            "head": sync.head,
            "indexed_block": sync.indexed_block,
            "finalized_block": sync.finalized_block,
            "lag": sync.lag,
            "events_indexed": sync.events_indexed,
            "counts": counts,
            "mirror": mirror,
            "contract": contract,
            "accumulators_match": match,
            "confirmations": runtime.policy.confirmations,
            "sync_confirmations": runtime.settings.sync_confirmations,
            "reorgs_repaired": sync.reorgs,
            "quorum_disagreements": sync.quorum_disagreements,
            "last_error": sync.last_error,
            "ready": not not_ready(sync, runtime.settings),
            "vouching": problem is None,
            "cannot_vouch": None if problem is None else {"code": problem.code, "reason": problem.reason},
            "as_of": as_of(sync),
        }

    @app.get(
        "/metrics",
        summary="Prometheus metrics (loopback, or a bearer token)",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Metrics."},
            **_errors(401, 403),
        },
    )
    async def prometheus_metrics(request: Request) -> Response:
        client = request.client.host if request.client else None
        if not is_loopback(client):
            if metrics_digest is None:
                raise Forbidden("metrics are served to loopback clients only (set FINVAULT_METRICS_TOKEN)")
            token = bearer_token(request)
            if token is None or not digest_matches(token, metrics_digest):
                raise Unauthorized()
        # Off the loop: the collectors read the mirror.
        exported = await off_loop.run(generate_latest, metrics.registry)
        return Response(exported, media_type=CONTENT_TYPE_LATEST)


def verdict_dict(verdict: Verdict, checked_at: str, state: dict[str, Any]) -> dict[str, Any]:
    """:meth:`Verdict.to_dict` plus ``checked_at`` and ``as_of`` (``state``), built by hand:
    ``dataclasses.asdict`` deep-copies every field, which was a tenth of a verification's cost. A
    unit test holds the two equal."""
    issuer, anchor, revocation = verdict.issuer, verdict.anchor, verdict.revocation
    return {
        "status": str(verdict.status),
        "valid": verdict.valid,
        "reasons": [str(code) for code in verdict.reasons],
        "checks": [_check_dict(c) for c in verdict.checks],
        "issuer": None
        if issuer is None
        else {"address": issuer.address, "name": issuer.name, "uri": issuer.uri, "active": issuer.active},
        "anchor": None
        if anchor is None
        else {
            "root": anchor.root,
            "tx_hash": anchor.tx_hash,
            "block_number": anchor.block_number,
            "block_hash": anchor.block_hash,
            "log_index": anchor.log_index,
            "anchored_at": anchor.anchored_at,
            "confirmations": anchor.confirmations,
            "final": anchor.final,
        },
        "revocation": None
        if revocation is None
        else {
            "scope": revocation.scope,
            "reason": revocation.reason,
            "tx_hash": revocation.tx_hash,
            "block_number": revocation.block_number,
            "block_hash": revocation.block_hash,
            "log_index": revocation.log_index,
            "revoked_at": revocation.revoked_at,
        },
        "evidence": dict(verdict.evidence),
        "notices": list(verdict.notices),
        "credential": verdict.credential,
        "checked_at": checked_at,
        "as_of": state,
    }


def _check_dict(c: Check) -> dict[str, Any]:
    return {"name": str(c.name), "outcome": c.outcome, "code": c.code and str(c.code), "detail": c.detail}


def _bulk_busy(turns: int) -> HttpError:
    """503 ``busy`` with ``Retry-After``: every bulk turn is taken, and the queue for them is full."""
    return HttpError(
        f"{turns} bulk verifications are running and more are waiting; retry in a moment",
        code="busy",
        status=503,
        headers={"Retry-After": str(BUSY_RETRY_AFTER)},
    )


def _as_receipt(body: Any, *, sized: bool = False) -> Any:
    """What :func:`verify` is given: a JSON object as it is; anything else becomes an INVALID
    (MALFORMED) verdict ("a receipt must be a JSON object") rather than a request error. With
    ``sized``, a receipt over :data:`MAX_RECEIPT_BYTES` is INVALID unread."""
    if not isinstance(body, dict):
        return b"null"
    if sized and (size := receipt_size(body)) > MAX_RECEIPT_BYTES:
        return malformed(f"the receipt is {size:,} bytes; the limit is {MAX_RECEIPT_BYTES:,}")
    return body
