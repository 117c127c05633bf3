"""The ``finvault`` command line.

Each package contributes its commands through the ``finvault.commands`` entry-point group, so the
CLI follows the dependency arrows: ``chain`` knows nothing of ``indexer`` or ``node``.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from chain.errors import ConfigError, FinVaultError
from chain.networks import DEV_CHAIN_ID, NETWORKS
from chain.service.files import require_private

if TYPE_CHECKING:  # the heavy packages load inside the commands that use them (finvault CMD --help)
    from chain.accounts import Signer
    from chain.registry import RegistryReader, RegistryWriter
    from chain.rpc import RpcClient
    from chain.service.settings import ChainSettings
    from chain.tx import TxSender

F = TypeVar("F", bound=Callable[..., Any])


# -- shared options and context -----------------------------------------------------------------


def chain_options(func: F) -> F:
    """--network/--rpc/--chain-id/--confirmations, read on top of the FINVAULT_* environment.

    Every command that reaches the chain takes these, and they all end in
    :class:`chain.service.settings.ChainSettings`, which applies the network preset: one place for all.
    """
    for option in reversed(
        [
            click.option(
                "--network",
                metavar="|".join(NETWORKS),
                help="Preset for chain id, confirmations, tip floor and RPC URL (default local); "
                "the other flags and FINVAULT_* variables win over it.",
            ),
            click.option("--rpc", "rpc_urls", multiple=True, help="JSON-RPC URL (repeat for failover)."),
            click.option("--chain-id", type=int, help="Expected chain id (default: the network's)."),
            click.option(
                "--confirmations", type=int, help="Blocks to wait after inclusion (default: the network's)."
            ),
        ]
    ):
        func = option(func)
    return func


def signer_options(func: F) -> F:
    """--dev [--dev-account N] | --keystore FILE [--password-file F]."""
    for option in reversed(
        [
            click.option(
                "--dev", is_flag=True, help="Sign with anvil's public dev account (local chains only)."
            ),
            click.option("--dev-account", type=int, default=0, show_default=True, help="Which dev account."),
            click.option(
                "--keystore", type=click.Path(path_type=Path), help="Encrypted eth-account keystore."
            ),
            click.option(
                "--password-file",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="File holding the keystore password (else FINVAULT_KEYSTORE_PASSWORD or a prompt).",
            ),
        ]
    ):
        func = option(func)
    return func


def registry_option(func: F) -> F:
    """--registry ADDR, else FINVAULT_REGISTRY."""
    return click.option("--registry", help="FinVaultRegistry address (or FINVAULT_REGISTRY).")(func)


def read_secret(
    prompt: str,
    file: Path | None,
    env_value: str | None,
    *,
    file_option: str,
    env_name: str,
    confirm: bool = False,
) -> str:
    """A secret from ``file`` (trailing newline dropped), else ``env_value``, else a hidden prompt.

    Without a terminal to prompt on, raises :class:`ConfigError` naming ``file_option`` and
    ``env_name`` (the two ways to give it) rather than wait on stdin, as it does for a file others
    on this machine can read.
    """
    if file is not None:
        require_private(file, "secret file")
        return file.read_text().rstrip("\r\n")
    if env_value:
        return env_value
    if not sys.stdin.isatty():
        raise ConfigError(
            f"{prompt.lower()} needed and no terminal to ask on: pass {file_option} FILE "
            f"(a file only you can read) or set {env_name}"
        )
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


@dataclass
class ChainSession:
    """Settings plus lazily built RPC client, signer and registry binding for one command."""

    settings: ChainSettings
    dev: bool = False
    dev_account: int = 0
    password_file: Path | None = None

    def close(self) -> None:
        """Closes the RPC connection if one was opened."""
        if "rpc" in self.__dict__:
            self.rpc.close()

    @cached_property
    def rpc(self) -> RpcClient:
        """The RPC client, checked to serve the configured chain id (else :class:`ChainMismatch`)."""
        from chain.rpc import RpcClient

        client = RpcClient(self.settings.rpc_urls, policy=self.settings.retry_policy)
        client.require_chain_id(self.settings.chain_id)
        return client

    @cached_property
    def signer(self) -> Signer:
        """The sending account: anvil's dev account (local chains only) or the decrypted keystore."""
        from chain.accounts import LocalSigner, require_dev_chain

        if self.dev:
            require_dev_chain(self.settings.chain_id)
            return LocalSigner.dev(self.dev_account)
        if self.settings.keystore is None:
            raise ConfigError("no signing account: pass --keystore FILE, or --dev on a local chain")
        stored = self.settings.keystore_password
        password = read_secret(
            "Keystore password",
            self.password_file,
            stored.get_secret_value() if stored else None,
            file_option="--password-file",
            env_name="FINVAULT_KEYSTORE_PASSWORD",
        )
        return LocalSigner.from_keystore(self.settings.keystore, password)

    @cached_property
    def sender(self) -> TxSender:
        """Sends from :attr:`signer` with the settings' fee policy and confirmations."""
        from chain.contract import load_artifact
        from chain.tx import TxSender

        return TxSender(
            self.rpc,
            self.signer,
            chain_id=self.settings.chain_id,
            abi=load_artifact().abi,
            fees=self.settings.fee_policy,
            confirmations=self.settings.confirmations,
            poll_interval=0.2 if self.settings.chain_id == DEV_CHAIN_ID else 2.0,
        )

    @cached_property
    def reader(self) -> RegistryReader:
        """Read-only binding to the configured registry, its deployed code checked."""
        from chain.registry import RegistryReader

        reader = RegistryReader(self.rpc, self.settings.require_registry())
        reader.check_deployment()
        return reader

    @cached_property
    def registry(self) -> RegistryWriter:
        """Binding that sends the registry's transactions from :attr:`signer`, its deployed code checked."""
        from chain.registry import RegistryWriter

        writer = RegistryWriter(self.sender, self.settings.require_registry())
        writer.check_deployment()
        return writer


def session(
    *,
    rpc_urls: tuple[str, ...] = (),
    dev: bool = False,
    dev_account: int = 0,
    password_file: Path | None = None,
    **overrides: Any,
) -> ChainSession:
    """A :class:`ChainSession` from the FINVAULT_* settings, with the command's options on top."""
    from chain.service.settings import ChainSettings, load_settings

    settings = load_settings(ChainSettings, rpc_urls=list(rpc_urls) or None, **overrides)
    return ChainSession(settings, dev=dev, dev_account=dev_account, password_file=password_file)


def emit(data: dict[str, Any], as_json: bool) -> None:
    """Prints ``data`` as one JSON object with sorted keys, or as ``key: value`` lines."""
    if as_json:
        click.echo(json.dumps(data, sort_keys=True))
    else:
        for key, value in data.items():
            click.echo(f"{key}: {value}")


# -- commands -----------------------------------------------------------------------------------


@click.command()
@click.option("--port", type=int, default=8545, show_default=True)
@click.option("--chain-id", type=int, default=DEV_CHAIN_ID, show_default=True)
@click.option("--block-time", type=float, help="Seconds per block (default: mine on each transaction).")
def devchain(port: int, chain_id: int, block_time: float | None) -> None:
    """Run a local anvil chain on 127.0.0.1 until Ctrl-C."""
    from chain.dev.devchain import DevChain  # a development tool: no role loads it at runtime
    from chain.service.signals import wait_for_shutdown

    with DevChain(port=port, chain_id=chain_id, block_time=block_time) as chain:
        click.echo(chain.rpc_url)
        click.echo(f"chain id {chain_id}; dev accounts from anvil's public mnemonic", err=True)
        wait_for_shutdown()


@click.command()
@chain_options
@signer_options
@click.option("--owner", help="Registry owner (default: the deploying account).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def deploy(owner: str | None, as_json: bool, **options: Any) -> None:
    """Deploy FinVaultRegistry from the committed artifact."""
    from chain.registry import deploy_registry
    from chain.service.settings import normalize_address

    chain = session(**options)
    receipt = deploy_registry(chain.sender, normalize_address(owner) if owner else None)
    emit(
        {
            "registry": receipt.contract_address,
            "chainId": chain.settings.chain_id,
            "block": receipt.block_number,
            "txHash": receipt.tx_hash,
            "owner": owner.lower() if owner else chain.signer.address,
        },
        as_json,
    )


@click.group()
def account() -> None:
    """Manage the encrypted keystore of a sending account."""


@account.command("new")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def account_new(out: Path, password_file: Path | None) -> None:
    """Create a random account in an encrypted keystore file OUT."""
    from chain.accounts import write_keystore
    from chain.service.settings import ChainSettings, load_settings

    if out.exists():
        raise ConfigError(f"{out} exists: refusing to overwrite a keystore")
    stored = load_settings(ChainSettings).keystore_password
    password = read_secret(
        "Keystore password",
        password_file,
        stored.get_secret_value() if stored else None,
        file_option="--password-file",
        env_name="FINVAULT_KEYSTORE_PASSWORD",
        confirm=True,
    )
    address = write_keystore(out, secrets.token_bytes(32), password)
    click.echo(address)


#: `finvault verify` exits 0 only when every receipt is VALID, 1 otherwise, 2 on usage errors, 3
#: when the node could not vouch for its mirror (no verdict: ask again later, or use --rpc), and 4
#: when every receipt is VALID but an issuer's did:web document does not name the account that
#: anchored it (identity ``mismatch``: genuine, but not from whom it says; a script that checks
#: only for 0 must not accept it). Identity that could not be checked (unreachable, refused) is
#: printed and leaves the exit status alone, as for a did:key issuer.
VERIFY_ALL_VALID, VERIFY_NOT_ALL_VALID, VERIFY_NODE_CANNOT_VOUCH, VERIFY_IDENTITY_MISMATCH = 0, 1, 3, 4
#: Seconds to wait for a node's answer to one receipt.
NODE_TIMEOUT = 30.0


@click.command("verify")
@click.argument(
    "receipts", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--node", "node_url", help="Ask this verification node (POST /verify) instead of an RPC endpoint."
)
@registry_option
@chain_options
@click.option("--no-finalized-tag", is_flag=True, help="Judge finality by --confirmations depth alone.")
@click.option("--unsafe-skip-finality", is_flag=True, help="Treat unfinalized anchors as final. Unsafe.")
@click.option("--at", "at", type=click.DateTime(), help="Judge expiry at this UTC time instead of now.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON verdict per line.")
def verify_command(
    receipts: tuple[Path, ...],
    node_url: str | None,
    registry: str | None,
    no_finalized_tag: bool,
    unsafe_skip_finality: bool,
    at: datetime | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Verify receipt files against a node (--node URL) or straight against the chain.

    Straight against the chain (--rpc URL --registry ADDR, or FINVAULT_RPC_URLS and
    FINVAULT_REGISTRY) needs no node and no mirror: facts come from the registry's views. The
    registry must come from you, never from the receipt: anyone can deploy a look-alike registry.
    With --node, the node's own chain, registry and finality policy decide.

    A node answers only while its mirror can vouch (synced, not halted, no divergence or drift, not
    stale); every verdict says which block it was judged at (as_of).

    Beside each verdict: the issuer's identity, when the credential names a did:web issuer. Its
    did.json is fetched (by the node, or here with --rpc, under the same rules:
    FINVAULT_DID_WEB_* settings) and must name the account that anchored the receipt. A
    MISMATCH is printed on the verdict's own line.

    Exit status: 0 when every receipt is VALID, 1 otherwise (INVALID, REVOKED, PENDING, or the
    node refused it), 2 on usage errors, 3 when the node could not vouch for its mirror, 4 when
    every receipt is VALID but an issuer's did:web identity is a mismatch.
    """
    if node_url is not None:
        rpc_only = {
            "--network": options.get("network"),
            "--rpc": options.get("rpc_urls"),
            "--registry": registry,
            "--chain-id": options.get("chain_id"),
            "--confirmations": options.get("confirmations"),
            "--no-finalized-tag": no_finalized_tag,
            "--unsafe-skip-finality": unsafe_skip_finality,
            "--at": at,
        }
        clashing = [flag for flag, value in rpc_only.items() if value]
        if clashing:
            raise click.UsageError(
                f"--node decides chain, registry and policy itself: drop {', '.join(clashing)}"
            )
        verdicts = _verdicts_from_node(node_url, receipts)
    else:
        verdicts = _verdicts_from_rpc(receipts, registry, no_finalized_tag, unsafe_skip_finality, at, options)
    from chain.core.verify import Status

    all_valid, unvouched, mismatched = True, False, False
    for path, verdict in verdicts:
        all_valid = all_valid and verdict.get("status") == str(Status.VALID)
        error: dict[str, Any] = verdict["error"] if isinstance(verdict.get("error"), dict) else {}
        cannot_vouch = str(error.get("code")).startswith("mirror_")
        unvouched = unvouched or cannot_vouch
        identity = verdict.get("identity") if isinstance(verdict.get("identity"), dict) else None
        mismatched = mismatched or (identity is not None and identity.get("status") == "mismatch")
        if as_json:
            click.echo(json.dumps({"file": str(path), **verdict}, sort_keys=True))
            continue
        if cannot_vouch:
            click.echo(f"{path}: no verdict: the node cannot vouch for its mirror right now")
            click.echo(
                f"  {error.get('code')}: {error.get('message')} (retry in {verdict.get('retry_after')} s)"
            )
        elif error or not isinstance(verdict.get("status"), str):
            click.echo(f"{path}: NO VERDICT")  # not a receipt the node would judge (empty, not JSON)
            if error:
                click.echo(f"  the node refused it: {error.get('code')}: {error.get('message')}")
        else:
            flag = "  !! IDENTITY MISMATCH" if identity and identity.get("status") == "mismatch" else ""
            click.echo(f"{path}: {verdict['status']}{flag}")
            if "legacy_format" in verdict.get("notices", ()):
                click.echo(
                    "  legacy format: finvault-receipt/1 (see docs/formats.md); ask the issuer for a /2"
                )
        if identity is not None:
            click.echo(f"  {describe_identity(identity)}")
        if isinstance(verdict.get("as_of"), dict):
            click.echo(f"  {_describe_as_of(verdict['as_of'], vouched=not cannot_vouch)}")
        for check in verdict.get("checks", verdict.get("document_checks", [])):
            code = f" [{check['code']}]" if check.get("code") else ""
            click.echo(f"  {check['outcome']:4} {check['name']}{code} {check['detail']}")
    if unvouched:
        sys.exit(VERIFY_NODE_CANNOT_VOUCH)
    if not all_valid:
        sys.exit(VERIFY_NOT_ALL_VALID)
    sys.exit(VERIFY_IDENTITY_MISMATCH if mismatched else VERIFY_ALL_VALID)


#: What each identity status means, for people (the reason code follows in brackets).
IDENTITY_WORDS = {
    "verified": "verified: its did.json names the account that anchored this receipt",
    "mismatch": "MISMATCH: its did.json does NOT name the account that anchored this receipt",
    "unreachable": "not checked: no usable did.json came back in time",
    "refused": "not checked: refused by the did:web fetch rules",
}


def describe_identity(identity: dict[str, Any]) -> str:
    """One line on the issuer's identity: the DID's full location (host and path, ASCII, with the
    Unicode form of an internationalized host beside it), and what its did.json said."""
    status = identity.get("status")
    did = identity.get("did")
    if status == "not_configured":  # the issuer is the credential's word: quoted and cut, never raw
        return (
            f"identity: none to check (issuer {str(did)[:120]!r}; no did:web)"
            if did
            else ("identity: none to check (no issuer named; no did:web)")
        )
    reason = identity.get("reason")
    if reason == "did_invalid":
        return f"identity: {str(did)[:120]!r} is not a valid did:web (refused, not fetched)"
    where = str(identity.get("location") or identity.get("domain"))
    if identity.get("unicode_location"):
        where += f" (shown in Unicode as {identity['unicode_location']}: not plain ASCII)"
    words = IDENTITY_WORDS.get(str(status), str(status))
    return f"identity: did:web {where}: {words}" + (f" [{reason}]" if reason and status != "verified" else "")


def _describe_as_of(state: dict[str, Any], *, vouched: bool) -> str:
    """``as_of`` for people: "checked against block N (0x…), 2.1 s behind the chain"; without a
    verdict, only where the node's mirror stands."""
    where = f"block {state.get('block_number')} ({state.get('block_hash')})"
    if not vouched:
        return f"the node's mirror is at {where}"
    lag = state.get("lag_seconds")
    behind = "not yet at the chain head" if lag is None else f"{lag:g} s behind the chain"
    return f"checked against {where}, {behind}"


def _verdicts_from_rpc(
    receipts: tuple[Path, ...],
    registry: str | None,
    no_finalized_tag: bool,
    unsafe_skip_finality: bool,
    at: datetime | None,
    options: dict[str, Any],
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Verdicts straight from the chain, each with the issuer's did:web identity resolved here by
    the node's own resolver and rules (waiting for the whole fetch: no later verdict to cache for)."""
    import asyncio

    from chain.core.verify import Policy, verify
    from chain.did_web import IdentityResolver
    from chain.rpc_facts import RpcFacts
    from chain.service.settings import DidWebSettings, load_settings

    chain = session(registry=registry, **options)
    if chain.settings.registry is None:  # here, unlike for other commands, a node is the other way
        raise ConfigError(
            "no registry address: pass --registry ADDR (or set FINVAULT_REGISTRY) to verify against "
            "the chain, or --node URL to ask a verification node"
        )
    facts = RpcFacts(chain.reader, chain.settings.chain_id)
    policy = Policy(
        confirmations=chain.settings.confirmations,
        use_finalized_tag=not no_finalized_tag,
        unsafe_skip_finality=unsafe_skip_finality,
    )
    identities = IdentityResolver.from_settings(load_settings(DidWebSettings), wait_for_fetch=True)
    now = at.replace(tzinfo=UTC) if at else datetime.now(UTC)
    with asyncio.Runner() as loop:
        try:
            for path in receipts:
                verdict = verify(path.read_bytes(), facts, now, policy)
                identity = loop.run(identities.identity(verdict, chain.settings.chain_id))
                yield path, {**verdict.to_dict(), "identity": identity}
        finally:
            loop.run(identities.aclose())


def _verdicts_from_node(node_url: str, receipts: tuple[Path, ...]) -> Iterator[tuple[Path, dict[str, Any]]]:
    """POST /verify per file, the file's bytes as they are (the node parses them strictly)."""
    import httpx

    from chain.rpc import redact_url

    if not node_url.startswith(("http://", "https://")):
        raise click.UsageError(f"--node must be an http(s) URL, not {node_url[:60]!r}")
    endpoint = node_url.rstrip("/") + "/verify"
    with httpx.Client(timeout=NODE_TIMEOUT) as client:
        for path in receipts:
            try:
                response = client.post(
                    endpoint, content=path.read_bytes(), headers={"Content-Type": "application/json"}
                )
            except httpx.HTTPError as exc:
                raise FinVaultError(
                    f"node {redact_url(node_url)}: {type(exc).__name__}", code="node_unavailable"
                ) from None
            try:
                body = response.json()
            except ValueError:
                body = None
            error = body.get("error") if isinstance(body, dict) else None
            refusal = (
                response.status_code == 503
                and isinstance(error, dict)
                and str(error.get("code", "")).startswith("mirror_")
            )
            if not refusal and (
                not isinstance(body, dict)
                or (response.status_code >= 500)
                or (response.status_code == 200 and "status" not in body)
            ):
                raise FinVaultError(
                    f"node {redact_url(node_url)} answered HTTP {response.status_code} to {path}",
                    code="node_error",
                )
            yield path, body  # a verdict, or {"error": {...}} when the node refused this file or
            # could not vouch for its mirror
