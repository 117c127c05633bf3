"""``finvault issue``, ``finvault anchor`` and ``finvault revoke``: the issuer service's commands.

Chain access (``--rpc``, ``--registry``, ``--dev``/``--keystore``, ...) is the same as every other
``finvault`` command's, through :func:`chain.cli.session`. The document-signing key is the
passphrase-encrypted PEM that ``finvault issuer keygen`` wrote to ``--key-dir``; its passphrase
comes from ``--passphrase-file``, ``FINVAULT_SIGNING_KEY_PASSPHRASE`` or a prompt.
"""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from chain.cli import chain_options, registry_option, session, signer_options
from chain.errors import ConfigError
from chain.service.signals import SHUTDOWN_SIGNALS, wait_for_shutdown
from issuer.errors import IntakeAllRejected, IssuerError, UnknownCertificate
from issuer.intake import InputFormat
from issuer.registration import load_signing_key, signing_key_passphrase
from issuer.scopes import SCOPES
from issuer.template import BUILTIN_TEMPLATES

#: The Data Integrity cryptosuites ``--cryptosuite`` offers (chain.core.secured.CRYPTOSUITES, spelled
#: here so that ``--help`` loads no signing stack; a unit test keeps the two equal).
CRYPTOSUITES = ("eddsa-jcs-2022", "eddsa-rdfc-2022")

if TYPE_CHECKING:  # the heavy packages load inside the commands that use them (finvault CMD --help)
    from chain.core.signing import PrivateKey
    from issuer.service import IssuerService, ProgressBar
    from issuer.settings import IssuerSettings
    from issuer.status import StatusPublisher
    from issuer.store import Batch, Store

F = TypeVar("F", bound=Callable[..., Any])

_ROOT = re.compile(r"^0x[0-9a-f]{64}$")


def issuer_options(func: F) -> F:
    """--db/--key-dir/--passphrase-file/--node-url/..., read on top of the FINVAULT_* environment."""
    for option in reversed(
        [
            click.option("--db", help="Issuer store: SQLAlchemy URL or SQLite file (or FINVAULT_ISSUER_DB)."),
            click.option(
                "--key-dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="Document-signing key directory from `finvault issuer keygen`.",
            ),
            click.option(
                "--passphrase-file",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="File holding the signing key's passphrase (else FINVAULT_SIGNING_KEY_PASSPHRASE).",
            ),
            click.option(
                "--node-url", help="Verification node URL that QR codes written at issuance link to."
            ),
            click.option("--max-batch", type=int, help="Most certificates per batch (default 10,000)."),
            click.option("--manifest-base-uri", help="Where batch manifests will be published."),
            click.option(
                "--qr/--no-qr",
                default=None,
                help="Write a QR code PNG beside each receipt (~2-3 ms each; or FINVAULT_ISSUER_QR_CODES). "
                "Default: none; `finvault qr RECEIPT --node-url URL` renders one later.",
            ),
            click.option(
                "--workers",
                type=click.IntRange(1, 256),
                help="Processes that secure, seal and write receipts "
                "(default: one per CPU; FINVAULT_ISSUER_WORKERS).",
            ),
            click.option(
                "--status-url",
                help="Base URL of the issuer's status lists (FINVAULT_ISSUER_STATUS_URL): credentials get "
                "a credentialStatus entry; lists go to OUT/status/ and the issuer API serves them.",
            ),
            click.option(
                "--securing",
                type=click.Choice(["sd-jwt", "data-integrity"]),
                help="sd-jwt (default: holders can withhold claims) or data-integrity (whole "
                "credentials, Ed25519 keys only); or FINVAULT_ISSUER_SECURING. Open Badges 3.0 "
                "credentials are always data-integrity.",
            ),
            click.option(
                "--cryptosuite",
                type=click.Choice(list(CRYPTOSUITES)),
                help="Data Integrity cryptosuite (default eddsa-jcs-2022; or FINVAULT_ISSUER_CRYPTOSUITE). "
                "Open Badges 3.0 credentials use their template's own suite.",
            ),
        ]
    ):
        func = option(func)
    return func


def template_and_out_options(func: F) -> F:
    """--template (a built-in template's name, or a template file) and --out (where receipts go)."""
    func = click.option(
        "--out",
        "out_dir",
        type=click.Path(file_okay=False, path_type=Path),
        required=True,
        help="Receipts directory.",
    )(func)
    return click.option(
        "--template",
        "template_spec",
        required=True,
        help=f"Credential template: a built-in one ({', '.join(BUILTIN_TEMPLATES)}: Open Badges 3.0) or a "
        "JSON file with {{column}} placeholders (./ob3 for a file named so).",
    )(func)


def _issuer_settings(options: dict[str, Any]) -> IssuerSettings:
    """Takes the issuer options out of ``options`` (what is left is chain access)."""
    from chain.service.settings import load_settings
    from issuer.settings import IssuerSettings

    return load_settings(
        IssuerSettings,
        issuer_db=options.pop("db"),
        issuer_key_dir=options.pop("key_dir"),
        node_url=options.pop("node_url"),
        issuer_max_batch=options.pop("max_batch"),
        issuer_manifest_base_uri=options.pop("manifest_base_uri"),
        issuer_qr_codes=options.pop("qr"),
        issuer_workers=options.pop("workers"),
        issuer_securing=options.pop("securing"),
        issuer_cryptosuite=options.pop("cryptosuite"),
        issuer_status_url=options.pop("status_url"),
    )


def _existing_store(url: str) -> str:
    """``url``, refused (:class:`DatabaseMissing`) if it names a SQLite file that does not exist:
    only ``issue`` and the API, which take certificates in, start a store."""
    from chain.service.db import require_existing_database

    require_existing_database(
        url, "the issuer store", "issue certificates first (`finvault issue`), or pass the --db it used"
    )
    return url


def _signing_key(settings: IssuerSettings, passphrase_file: Path | None) -> PrivateKey:
    if settings.issuer_key_dir is None:
        raise ConfigError("no document-signing key: pass --key-dir (a `finvault issuer keygen` directory)")
    return load_signing_key(settings.issuer_key_dir, signing_key_passphrase(passphrase_file, settings))


@contextmanager
def _service(
    store: Store, settings: IssuerSettings, out_dir: Path, options: dict[str, Any]
) -> Iterator[IssuerService]:
    """Connects to the chain, loads the signing key and checks it is registered: before any work."""
    from issuer.service import IssuerService

    passphrase_file = options.pop("passphrase_file")
    chain = session(registry=options.pop("registry"), **options)
    try:
        service = IssuerService(
            store,
            chain.registry,
            _signing_key(settings, passphrase_file),
            settings.issuer_config(out_dir),
            progress=progress_bar,
        )
        service.check_signing_key()
        yield service
    finally:
        chain.close()


def _check_key_for_template(template_spec: str, key: PrivateKey) -> None:
    """Refuses, before any work, a key the built-in Open Badges template cannot secure with (RSA)."""
    if template_spec in BUILTIN_TEMPLATES:
        from issuer.ob3 import require_ed25519

        require_ed25519(key)


def progress_bar(phase: str, total: int) -> AbstractContextManager[ProgressBar]:
    """A progress bar per phase on stderr, drawn only when stderr is a terminal (tqdm's
    ``disable=None``), and cleared when the phase ends."""
    from tqdm import tqdm

    return tqdm(total=total, desc=phase, unit=" certs", file=sys.stderr, disable=None, leave=False)


def _report(batches: list[Batch], out_dir: Path) -> None:
    from issuer.store import BatchStatus

    failed = [batch for batch in batches if batch.status is BatchStatus.FAILED]
    for batch in batches:
        if batch.status is BatchStatus.ANCHORED:
            click.echo(
                f"batch {batch.root}: {batch.leaf_count} certificates anchored in block "
                f"{batch.block_number} ({batch.tx_hash}); receipts in {out_dir}"
            )
        else:
            click.echo(f"batch {batch.root}: {batch.status}: {batch.error}", err=True)
    if not batches:
        click.echo("nothing to anchor")
    if failed:
        raise IssuerError(
            f"{len(failed)} batch(es) failed to anchor; fix the cause, then `finvault anchor --retry-failed`"
        )


@click.command("issue")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@template_and_out_options
@click.option(
    "--format", "fmt", type=click.Choice([f.value for f in InputFormat]), help="Default: from the extension."
)
@click.option("--id-column", default="id", show_default=True, help="The column holding certificate ids.")
@click.option("--strict", is_flag=True, help="Store nothing if any row is bad.")
@click.option("--now", is_flag=True, help="Also seal, anchor and write receipts right away.")
@issuer_options
@registry_option
@chain_options
@signer_options
def issue(
    input_path: Path,
    template_spec: str,
    out_dir: Path,
    fmt: str | None,
    id_column: str,
    strict: bool,
    now: bool,
    **options: Any,
) -> None:
    """Store the certificates of INPUT (CSV, JSON Lines or a JSON array) as pending.

    Bad rows are reported with their line numbers and the good ones kept (--strict: nothing is
    stored if any row is bad). With --now the pending certificates are also sealed into a batch,
    anchored, and their receipts written to OUT.

    Exit status: 0 when at least one row was accepted (rejected rows, if any, are listed on stderr
    and counted in the summary), 2 when every row was rejected or --strict met a bad row.
    """
    from tqdm import tqdm

    from issuer.intake import read_input
    from issuer.pipeline import WorkerPool
    from issuer.service import ingest
    from issuer.store import Store
    from issuer.template import template_for

    settings = _issuer_settings(options)
    template = template_for(template_spec, issuer_did=settings.issuer_did)
    with Store.open(settings.issuer_db) as store, ExitStack() as stack:
        connected = _service(store, settings, out_dir, options) if now else nullcontext()
        service = stack.enter_context(connected)
        if service is not None:
            _check_key_for_template(template_spec, service.signing_key)
        # One pool of workers for the whole command: intake, then (--now) sealing and receipts.
        pool = stack.enter_context(WorkerPool(settings.workers) if service is None else service.workers())
        results = read_input(
            input_path, template, fmt=InputFormat(fmt) if fmt else None, id_column=id_column, pool=pool
        )
        with tqdm(results, desc="intake", unit=" rows", file=sys.stderr, disable=None, leave=False) as rows:
            report = ingest(store, rows, strict=strict)
        for rejected in report.rejected:
            click.echo(f"{input_path}: rejected {rejected}", err=True)
        summary = f"{report.accepted} accepted, {len(report.rejected)} rejected"
        if report.rejected and not report.accepted:
            raise IntakeAllRejected(
                f"{summary}: every row of {input_path} was rejected (above); nothing stored"
            )
        if report.rejected:
            summary += " (the rejected rows are listed above on stderr; the accepted ones are stored)"
        click.echo(summary)
        if service is not None:
            _report(service.run_once(), out_dir)


@click.command("anchor")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--retry-failed", is_flag=True, help="Also retry batches whose anchoring failed.")
@click.option("--every", type=float, help="Keep running: seal and anchor every SECONDS until Ctrl-C.")
@click.option("--when-pending", type=int, help="With --every: go early at N pending (default: a full batch).")
@issuer_options
@registry_option
@chain_options
@signer_options
def anchor_command(
    out_dir: Path, retry_failed: bool, every: float | None, when_pending: int | None, **options: Any
) -> None:
    """Finish interrupted batches, then seal and anchor every pending certificate.

    With --every, keep doing so on a timer (and as soon as --when-pending certificates wait)
    until Ctrl-C or SIGTERM; a cycle in progress is finished first.
    """
    from issuer.scheduler import BatchScheduler
    from issuer.store import Store

    settings = _issuer_settings(options)
    with Store.open(_existing_store(settings.issuer_db)) as store, ExitStack() as stack:
        service = stack.enter_context(_service(store, settings, out_dir, options))
        if every is None:
            _report(service.run_once(retry_failed=retry_failed), out_dir)
            return
        if retry_failed:
            _report(service.resume(retry_failed=True), out_dir)
        threshold = when_pending or settings.issuer_max_batch
        signal.pthread_sigmask(signal.SIG_BLOCK, SHUTDOWN_SIGNALS)  # the scheduler's threads inherit it
        with BatchScheduler(service, interval=every, threshold=threshold, check_every=min(every, 5.0)):
            click.echo(f"anchoring every {every:g}s, or at {threshold} pending; Ctrl-C stops", err=True)
            wait_for_shutdown()
        click.echo("stopped", err=True)


def _certificate_ids(store: Store, receipts: tuple[Path, ...]) -> list[str]:
    from chain.core.encoding import hex0x
    from chain.core.receipt import Receipt, parse_receipt
    from chain.core.secured import leaf_of

    ids = []
    for path in receipts:
        receipt = parse_receipt(path.read_bytes())
        leaf = receipt.proof.leaf if isinstance(receipt, Receipt) else hex0x(leaf_of(receipt.credential))
        certificate = store.certificate_by_leaf(leaf)
        if certificate is None or certificate.batch_root != receipt.proof.root:
            raise UnknownCertificate(f"{path}: this issuer store holds no such certificate")
        ids.append(certificate.id)
    return ids


@click.command("revoke")
@click.argument("receipts", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--batch", "batch_root", help="Revoke a whole batch by its root instead.")
@click.option(
    "--reason", required=True, help="RFC 5280 reason: name (superseded, keyCompromise, ...) or code."
)
@click.option("--db", help="Issuer store: SQLAlchemy URL or SQLite file (or FINVAULT_ISSUER_DB).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Receipts folder: where the status lists are republished (needed once the issuer has lists).",
)
@click.option(
    "--key-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Document-signing key that signs the republished status lists (or FINVAULT_ISSUER_KEY_DIR).",
)
@click.option(
    "--passphrase-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File holding the signing key's passphrase (else FINVAULT_SIGNING_KEY_PASSPHRASE).",
)
@registry_option
@chain_options
@signer_options
def revoke(
    receipts: tuple[Path, ...],
    batch_root: str | None,
    reason: str,
    db: str | None,
    out_dir: Path | None,
    key_dir: Path | None,
    passphrase_file: Path | None,
    **options: Any,
) -> None:
    """Revoke the certificates of RECEIPT files (one transaction per batch), or --batch ROOT.

    Idempotent: what is already revoked on-chain is reported as such and costs no transaction.
    An issuer that publishes status lists republishes them, signed, once the revocation is confirmed:
    pass --out and --key-dir (checked before anything is sent).
    """
    from chain.service.settings import load_settings
    from issuer.revoke import Revoker, parse_reason
    from issuer.settings import IssuerSettings
    from issuer.store import Store

    if bool(receipts) == bool(batch_root):
        raise ConfigError("pass receipt files or --batch ROOT (one of the two)")
    if batch_root is not None and not _ROOT.fullmatch(batch_root.lower()):
        raise ConfigError("--batch takes a root: 0x and 64 hex digits")
    code = parse_reason(reason)
    settings = load_settings(IssuerSettings, issuer_db=db, issuer_key_dir=key_dir)
    with Store.open(_existing_store(settings.issuer_db)) as store:
        status_lists = _status_publisher(store, settings, out_dir, passphrase_file)
        chain = session(registry=options.pop("registry"), **options)
        try:
            revoker = Revoker(store, chain.registry, status_lists=status_lists)
            if batch_root is not None:
                results = [revoker.revoke_batch(batch_root.lower(), code)]
            else:
                results = revoker.revoke_certificates(_certificate_ids(store, receipts), code)
        finally:
            chain.close()
    for result in results:
        click.echo(result.describe())


def _status_publisher(
    store: Store, settings: IssuerSettings, out_dir: Path | None, passphrase_file: Path | None
) -> StatusPublisher | None:
    """What republishes the status lists after a revocation: None when the issuer has none; a
    ConfigError, before anything is sent, when it has some and --out or the key is missing."""
    from issuer.status import StatusPublisher

    if not store.has_status_lists():
        return None
    if out_dir is None or settings.issuer_key_dir is None:
        raise ConfigError(
            "this issuer publishes status lists: pass --out (the receipts folder) and --key-dir, so that "
            "the revocation reaches them"
        )
    controller = f"did:web:{settings.issuer_did_web_domain}" if settings.issuer_did_web_domain else None
    key = _signing_key(settings, passphrase_file)
    return StatusPublisher(store, out_dir, key, controller)


# -- the issuer HTTP API -----------------------------------------------------------------------


@click.group("issuer-api")
def issuer_api() -> None:
    """Run the issuer HTTP API and manage its API keys."""


@issuer_api.command("serve")
@template_and_out_options
@click.option("--host", help="Interface to bind (default 127.0.0.1, or FINVAULT_ISSUER_API_HOST).")
@click.option("--port", type=int, help="Port (default 8100, or FINVAULT_ISSUER_API_PORT).")
@click.option(
    "--id-column", default="id", show_default=True, help="The record field holding certificate ids."
)
@click.option(
    "--every", type=float, help="Seconds between batches (default 60, or FINVAULT_ISSUER_BATCH_INTERVAL)."
)
@click.option("--when-pending", type=int, help="Seal early at N pending (default: a full batch).")
@issuer_options
@registry_option
@chain_options
@signer_options
def issuer_api_serve(
    template_spec: str,
    out_dir: Path,
    host: str | None,
    port: int | None,
    id_column: str,
    every: float | None,
    when_pending: int | None,
    **options: Any,
) -> None:
    """Serve the issuer API, sealing and anchoring submitted certificates on a timer.

    Certificates POSTed to /certificates wait as pending; every --every seconds (or at
    --when-pending) they are sealed, anchored and their receipts written to OUT.
    """
    from chain.service.settings import load_settings
    from chain.service.web import serve
    from issuer.api import IssuerApi, create_app
    from issuer.scheduler import BatchScheduler
    from issuer.settings import IssuerApiSettings
    from issuer.store import Store
    from issuer.template import template_for
    from issuer.webhooks import WebhookDispatcher, WebhookPolicy

    issuer = _issuer_settings(options)
    settings = load_settings(
        IssuerApiSettings,
        **issuer.model_dump(exclude_unset=True),
        issuer_api_host=host,
        issuer_api_port=port,
        issuer_batch_interval=every,
        issuer_batch_threshold=when_pending,
    )
    template = template_for(template_spec, issuer_did=settings.issuer_did)
    with Store.open(settings.issuer_db) as store, _service(store, settings, out_dir, options) as service:
        _check_key_for_template(template_spec, service.signing_key)
        scheduler = BatchScheduler(
            service,
            interval=settings.issuer_batch_interval,
            threshold=settings.issuer_batch_threshold or settings.issuer_max_batch,
            check_every=min(settings.issuer_batch_interval, 5.0),
        )
        secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else b""
        api = IssuerApi(
            store,
            template,
            out_dir,
            service=service,
            scheduler=scheduler,
            webhooks=WebhookDispatcher(
                store,
                settings.webhook_urls,
                secret,
                policy=WebhookPolicy(max_attempts=settings.webhook_max_attempts),
            ),
            id_column=id_column,
            chain_lock=scheduler.lock,
        )
        app = create_app(settings, api)
        click.echo(
            f"issuer API on http://{settings.issuer_api_host}:{settings.issuer_api_port} "
            f"(batches every {settings.issuer_batch_interval:g}s); Ctrl-C stops",
            err=True,
        )
        serve(
            app,
            host=settings.issuer_api_host,
            port=settings.issuer_api_port,
            log_level="warning",
            limits=settings.connection_limits,
        )


@issuer_api.group("key")
def issuer_api_key() -> None:
    """Create, list and revoke API keys (stored hashed in the issuer store)."""


@issuer_api_key.command("create")
@click.option("--name", required=True, help="Who or what uses the key.")
@click.option(
    "--scope", "scopes", multiple=True, required=True, type=click.Choice(SCOPES), help="Repeat for several."
)
@click.option("--db", help="Issuer store: SQLAlchemy URL or SQLite file (or FINVAULT_ISSUER_DB).")
def issuer_api_key_create(name: str, scopes: tuple[str, ...], db: str | None) -> None:
    """Create an API key and print its token (once: only its hash is kept)."""
    from chain.service.settings import load_settings
    from issuer.api_keys import create_api_key
    from issuer.settings import IssuerSettings
    from issuer.store import Store

    settings = load_settings(IssuerSettings, issuer_db=db)
    with Store.open(settings.issuer_db) as store:
        click.echo(create_api_key(store, name, scopes))


@issuer_api_key.command("list")
@click.option("--db", help="Issuer store: SQLAlchemy URL or SQLite file (or FINVAULT_ISSUER_DB).")
def issuer_api_key_list(db: str | None) -> None:
    """List API keys: id, scopes, name, created, revoked."""
    from chain.service.settings import load_settings
    from issuer.api_keys import list_api_keys
    from issuer.settings import IssuerSettings
    from issuer.store import Store

    settings = load_settings(IssuerSettings, issuer_db=db)
    with Store.open(_existing_store(settings.issuer_db)) as store:
        for key in list_api_keys(store):
            revoked = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            click.echo(f"{key.id}  {key.scopes:<18} {key.created_at:%Y-%m-%d %H:%M}  {revoked}  {key.name}")


@issuer_api_key.command("revoke")
@click.argument("key_id")
@click.option("--db", help="Issuer store: SQLAlchemy URL or SQLite file (or FINVAULT_ISSUER_DB).")
def issuer_api_key_revoke(key_id: str, db: str | None) -> None:
    """Disable the API key KEY_ID at once."""
    from chain.service.settings import load_settings
    from issuer.api_keys import revoke_api_key
    from issuer.settings import IssuerSettings
    from issuer.store import Store

    settings = load_settings(IssuerSettings, issuer_db=db)
    with Store.open(_existing_store(settings.issuer_db)) as store:
        revoke_api_key(store, key_id)
    click.echo(f"API key {key_id} revoked")
