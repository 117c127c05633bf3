"""The ``finvault`` console script end to end against a real anvil chain.

Operator mistakes (wrong chain id, unreachable RPC, wrong keystore password, bad settings) must
give one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from chain.accounts import LocalSigner, write_keystore
from chain.core.sd_jwt import b64url_decode
from chain.core.status_list import list_bits, read_entry, set_indexes
from chain.dev.devchain import DevChain
from chain.keys import decrypt_private_key, key_protection
from chain.rpc import RpcClient
from chain.service.files import write_secret_file
from tests.integration.conftest import FINVAULT, run_finvault
from tests.tools.sd_jwt_peers import public_jwk, sd_jwt_core

pytestmark = pytest.mark.slow  # each test here takes a second or more

ROOT = Path(__file__).resolve().parents[2]

ISSUER = LocalSigner.dev(1).address


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def deploy(anvil: DevChain) -> str:
    result = run_finvault("deploy", "--rpc", anvil.rpc_url, "--dev", "--json")
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["registry"])


def test_deploy_json(anvil: DevChain, rpc: RpcClient, clean_chain: None) -> None:
    result = run_finvault("deploy", "--rpc", anvil.rpc_url, "--dev", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["chainId"] == 31337
    assert out["block"] == rpc.block_number()
    assert out["owner"] == LocalSigner.dev(0).address
    assert len(rpc.get_code(out["registry"])) > 1000


@pytest.mark.slow(seconds=11)
def test_issuer_lifecycle_through_the_cli(anvil: DevChain, tmp_path: Path, clean_chain: None) -> None:
    env = {"FINVAULT_RPC_URLS": anvil.rpc_url, "FINVAULT_REGISTRY": deploy(anvil)}
    registered = run_finvault(
        "issuer", "register", ISSUER, "--name", "Uni", "--uri", "https://uni.example", "--dev", env=env
    )
    assert registered.returncode == 0, registered.stderr
    assert (
        run_finvault("issuer", "status", ISSUER, env=env).stdout.strip()
        == f"{ISSUER}: active (Uni, https://uni.example)"
    )

    suspended = run_finvault("issuer", "status", ISSUER, "--inactive", "--dev", env=env)
    assert suspended.returncode == 0, suspended.stderr
    assert run_finvault("issuer", "status", ISSUER, env=env).stdout.startswith(f"{ISSUER}: inactive")
    assert run_finvault("issuer", "status", ISSUER, "--active", "--dev", env=env).returncode == 0

    passphrase = tmp_path / "passphrase"
    write_secret_file(passphrase, b"a long enough passphrase\n")
    keys = tmp_path / "keys"
    made = run_finvault(
        "issuer",
        "keygen",
        "--algorithm",
        "rsa-2048",
        "--out",
        str(keys),
        "--passphrase-file",
        str(passphrase),
    )
    assert made.returncode == 0, made.stderr
    info = json.loads((keys / "signing-key.json").read_text())
    assert info["algorithm"] == "rsa-pkcs1v15-sha256"
    assert (keys / "signing-key.pem").stat().st_mode & 0o077 == 0
    assert b"ENCRYPTED" in (keys / "signing-key.pem").read_bytes()

    again = run_finvault("issuer", "keygen", "--out", str(keys), "--passphrase-file", str(passphrase))
    assert_one_line_error(again, "refusing to overwrite")

    added = run_finvault("issuer", "add-key", str(keys), "--dev", "--dev-account", "1", env=env)
    assert added.returncode == 0, added.stderr
    assert info["keyId"] in added.stdout

    revoked = run_finvault("issuer", "revoke-key", info["keyId"], "--dev", "--dev-account", "1", env=env)
    assert revoked.returncode == 0, revoked.stderr
    twice = run_finvault("issuer", "revoke-key", info["keyId"], "--dev", "--dev-account", "1", env=env)
    assert_one_line_error(twice, "KeyAlreadyRevoked")


def test_non_owner_registration_reports_the_custom_error(anvil: DevChain, clean_chain: None) -> None:
    env = {"FINVAULT_RPC_URLS": anvil.rpc_url, "FINVAULT_REGISTRY": deploy(anvil)}
    result = run_finvault(
        "issuer", "register", ISSUER, "--name", "X", "--uri", "u", "--dev", "--dev-account", "2", env=env
    )
    assert_one_line_error(result, "transaction_failed", "OwnableUnauthorizedAccount")


def test_wrong_chain_id_is_one_line(anvil: DevChain) -> None:
    result = run_finvault("deploy", "--rpc", anvil.rpc_url, "--chain-id", "137", "--dev")
    assert_one_line_error(result, "chain_mismatch", "chain id 31337", "137")


def test_unreachable_rpc_is_one_line(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/v3/SECRET"
    result = run_finvault("deploy", "--rpc", url, "--dev", env={"FINVAULT_RPC_ROUNDS": "2"})
    assert_one_line_error(result, "rpc_unavailable")
    assert "SECRET" not in result.stderr


def test_wrong_keystore_password_is_one_line(anvil: DevChain, tmp_path: Path) -> None:
    keystore = tmp_path / "owner.json"
    write_keystore(keystore, bytes([0x11]) * 32, "the right password")
    env = {"FINVAULT_KEYSTORE_PASSWORD": "the wrong password"}
    result = run_finvault("deploy", "--rpc", anvil.rpc_url, "--keystore", str(keystore), env=env)
    assert_one_line_error(result, "keystore_error", "wrong password")
    assert "the wrong password" not in result.stderr


@pytest.mark.slow(seconds=3)
def test_keystore_account_deploys(anvil: DevChain, rpc: RpcClient, tmp_path: Path, clean_chain: None) -> None:
    password = tmp_path / "password"
    write_secret_file(password, b"keystore password\n")
    keystore = tmp_path / "owner.json"
    created = run_finvault("account", "new", "--out", str(keystore), "--password-file", str(password))
    assert created.returncode == 0, created.stderr
    address = created.stdout.strip()
    assert keystore.stat().st_mode & 0o077 == 0
    rpc.call("anvil_setBalance", [address, hex(10**18)])
    result = run_finvault(
        "deploy",
        "--rpc",
        anvil.rpc_url,
        "--keystore",
        str(keystore),
        "--password-file",
        str(password),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["owner"] == address


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"FINVAULT_CHAIN_ID": "polygon"}, "chain_id"),
        ({"FINVAULT_CONFIRMATIONS": "0"}, "confirmations"),
        ({"FINVAULT_RPC_URLS": "ftp://example"}, "rpc_urls"),
        ({"FINVAULT_NETWORK": "mainnet"}, "network: must be local, amoy or polygon"),
        ({"FINVAULT_NETWORK": "amoy", "FINVAULT_CHAIN_ID": "31337"}, "network amoy is chain 80002"),
    ],
)
def test_bad_settings_fail_before_connecting(env: dict[str, str], fragment: str) -> None:
    result = run_finvault("deploy", "--dev", env=env)
    assert_one_line_error(result, "config_error", "invalid settings", fragment)
    assert result.returncode == 2


def test_dev_accounts_refused_on_a_public_chain_id() -> None:
    with DevChain(chain_id=137) as polygon_like:
        result = run_finvault("deploy", "--rpc", polygon_like.rpc_url, "--chain-id", "137", "--dev")
    assert_one_line_error(result, "public test keys")


#: For commands given a public --network: anything that still tried the public endpoint would
#: go through this proxy, where nothing listens, instead of leaving the machine.
NO_PUBLIC_NETWORK = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def test_network_preset_chain_id_is_checked_against_the_endpoint(anvil: DevChain) -> None:
    result = run_finvault(
        "deploy", "--network", "amoy", "--rpc", anvil.rpc_url, "--dev", env=NO_PUBLIC_NETWORK
    )
    assert_one_line_error(result, "chain_mismatch", "chain id 31337", "chain id 80002 is configured")


@pytest.mark.slow(seconds=6)
def test_network_polygon_on_a_local_polygon_like_chain(tmp_path: Path) -> None:
    """--network polygon against a local chain with id 137: the preset's 30 gwei tip floor is what
    the deployment pays, and --confirmations 1 overrides the preset's 64 (anvil mines on demand)."""
    password = tmp_path / "password"
    write_secret_file(password, b"keystore password\n")
    keystore = tmp_path / "owner.json"
    address = write_keystore(keystore, bytes([0x22]) * 32, "keystore password")
    with DevChain(chain_id=137) as polygon_like, RpcClient([polygon_like.rpc_url]) as rpc:
        rpc.call("anvil_setBalance", [address, hex(10**18)])
        common = ("--network", "polygon", "--rpc", polygon_like.rpc_url)
        refused = run_finvault("deploy", *common, "--dev", env=NO_PUBLIC_NETWORK)
        assert_one_line_error(refused, "public test keys")
        result = run_finvault(
            "deploy",
            *common,
            "--confirmations",
            "1",
            "--keystore",
            str(keystore),
            "--password-file",
            str(password),
            "--json",
            env=NO_PUBLIC_NETWORK,
        )
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert out["chainId"] == 137
        tx = rpc.call("eth_getTransactionByHash", [out["txHash"]])
    assert int(tx["maxPriorityFeePerGas"], 16) >= 30 * 10**9


def test_missing_signer_is_one_line(anvil: DevChain) -> None:
    assert_one_line_error(run_finvault("deploy", "--rpc", anvil.rpc_url), "--keystore")


def test_devchain_command_serves_until_interrupted(reserved_port: int) -> None:
    port = reserved_port
    process = subprocess.Popen(
        [FINVAULT, "devchain", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url == f"http://127.0.0.1:{port}"
        answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
        assert answer.json()["result"] == hex(31337)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    with pytest.raises(httpx.TransportError):
        httpx.post(url, json={}, timeout=2)  # anvil went down with it


@pytest.mark.slow(seconds=3)
def test_demo_check(tmp_path: Path, reserved_port: int) -> None:
    state = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--check", "--state-dir", str(state),
         "--chain-port", str(reserved_port)],
        capture_output=True, text=True, timeout=300, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("FINVAULT_")},
        preexec_fn=lambda: os.umask(0o022),  # a common umask: the demo must not rely on a strict one
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "demo check passed" in result.stdout
    assert "its grade disclosure rewritten, is INVALID" in result.stdout
    assert "/verify says VALID" in result.stdout  # through the node's HTTP API
    assert "/status/1 is 200 (public, max-age=300, ETag), 304 for its ETag" in result.stdout
    assert "/credentials/issue is 201" in result.stdout  # through the issuer API, with the demo's key
    env = json.loads((state / "env.json").read_text())
    assert env["node_url"].startswith("http://127.0.0.1:")
    assert env["issuer_api_url"].startswith("http://127.0.0.1:")
    key_file = Path(env["issuer_api_key_file"])
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(r"fvk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}\n", key_file.read_text())
    receipts = sorted(Path(env["receipts_dir"]).glob("*.json"))
    assert len(receipts) == 50
    # Three Open Badges 3.0 from the built-in template, in a second batch, each whole under a Data
    # Integrity proof, their recipients' e-mail addresses hashed.
    assert "3 Open Badges 3.0 anchored in block" in result.stdout
    assert "all 3 Open Badges VALID against the mirror" in result.stdout
    assert "all 3 Open Badges VALID against the chain" in result.stdout
    badge_files = sorted(Path(env["badges_dir"]).glob("*.json"))
    badges = [json.loads(path.read_text())["credential"] for path in badge_files]
    assert [badge["type"] for badge in badges] == [["VerifiableCredential", "OpenBadgeCredential"]] * 3
    assert {badge["proof"]["cryptosuite"] for badge in badges} == {"eddsa-rdfc-2022"}
    assert badges[0]["credentialSubject"]["achievement"]["name"] == "Python 101"
    assert badges[1]["credentialSubject"]["identifier"][0]["identityHash"].startswith("sha256$")
    assert "graduate2@" not in json.dumps(badges)
    assert env["mirror_db"].startswith("sqlite:///")
    assert env["issuer_db"].startswith("sqlite:///")
    assert env["chain_id"] == 31337
    assert env["registry"].startswith("0x")
    issuer_db = Path(env["issuer_db"].removeprefix("sqlite:///"))
    issuer_files = [
        state, state / "issuer", state / "students.csv", issuer_db, Path(env["receipts_dir"]),
        *state.glob("issuer/*"), *Path(f"{issuer_db}-wal").parent.glob(f"{issuer_db.name}*"),
        *Path(env["receipts_dir"]).rglob("*"), *Path(env["badges_dir"]).rglob("*"), state / "badges.csv",
        key_file,
    ]  # fmt: skip
    assert len(issuer_files) > 100
    shared = [
        f"{path} {path.stat().st_mode & 0o777:o}" for path in issuer_files if path.stat().st_mode & 0o077
    ]
    assert not shared, shared  # the demo's issuer files are private, whatever the umask (022 here)
    assert key_protection((state / "issuer" / "signing-key.pem").read_bytes()).meets_guidance

    # Demo credentials are standard SD-JWTs: an independent implementation (@sd-jwt/core) verifies
    # them under the demo's registered key. A rewritten grade disclosure is referenced by nothing the
    # issuer signed: @sd-jwt/core drops it (the grade is gone), FinVault refuses the receipt.
    credentials = [json.loads(path.read_text())["credential"] for path in receipts[:3]]
    forged = json.loads((state / "tampered.json").read_text())["credential"]  # the demo's forgery
    key_dir = state / "issuer"
    jwk = public_jwk(
        decrypt_private_key(
            (key_dir / "signing-key.pem").read_bytes(), (key_dir / "passphrase").read_text().strip()
        )
    )
    results = sd_jwt_core([(c, jwk, "EdDSA") for c in [*credentials, forged]])
    assert [r["verified"] for r in results] == [True, True, True, True], results
    assert "grade" in results[0]["payload"]["credentialSubject"]
    assert "grade" not in results[3]["payload"]["credentialSubject"]
    assert results[0]["payload"]["issuer"]["id"].startswith("did:key:z6Mk")
    # Every credential names its entry in the list the issuer API served, and the list is published.
    lists = {result["payload"]["credentialStatus"]["statusListCredential"] for result in results[:3]}
    assert lists == {f"{env['issuer_api_url']}/status/1"}
    assert (Path(env["receipts_dir"]) / "status" / "1.leaves.json").is_file()
    with pytest.raises(httpx.TransportError):
        httpx.post(env["rpc_url"], json={}, timeout=2)  # the demo's chain is gone
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{env['node_url']}/health", timeout=2)  # and so is its node
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{env['issuer_api_url']}/health", timeout=2)  # and its issuer API


# -- a newcomer's mistakes, each found from a fresh clone ----------------------------------------------


@pytest.mark.parametrize("option", ["--rpc", "--quorum-rpc"])
def test_an_rpc_url_without_a_scheme_suggests_the_http_form(option: str, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror.db"
    result = run_finvault("sync", option, "127.0.0.1:8545", "--db", str(mirror))
    assert_one_line_error(
        result, "config_error", "127.0.0.1:8545 has no scheme", "write http://127.0.0.1:8545"
    )
    assert "://?" not in result.stderr  # what the redaction made of it before
    assert result.returncode == 2
    assert not mirror.exists()


def test_a_websocket_rpc_url_is_refused_by_name(tmp_path: Path) -> None:
    result = run_finvault("sync", "--rpc", "ws://127.0.0.1:8546", "--db", str(tmp_path / "mirror.db"))
    assert_one_line_error(result, "config_error", "ws://127.0.0.1:8546", "WebSocket", "http(s)")


REGISTRY = ("--registry", "0x" + "11" * 20)  # nothing listens: the database is checked first
MISSING_STORE_HINT = "issue certificates first (`finvault issue`)"
MISSING_MIRROR_HINT = "run `finvault sync` (or `finvault node`) first"


@pytest.mark.parametrize(
    ("command", "database", "hint"),
    [
        (["reconcile", *REGISTRY], "mirror", MISSING_MIRROR_HINT),
        (["reconcile", "--quick", *REGISTRY], "mirror", MISSING_MIRROR_HINT),
        (["resync", "--from", "1", *REGISTRY], "mirror", MISSING_MIRROR_HINT),
        (["revoke", "--batch", "0x" + "ab" * 32, "--reason", "4", "--dev", *REGISTRY], "issuer store",
         MISSING_STORE_HINT),
        (["anchor", "--out", "receipts", "--dev", *REGISTRY], "issuer store", MISSING_STORE_HINT),
        (["issuer-api", "key", "list"], "issuer store", MISSING_STORE_HINT),
        (["issuer-api", "key", "revoke", "1"], "issuer store", MISSING_STORE_HINT),
    ],
)  # fmt: skip
def test_a_database_that_does_not_exist_is_refused(
    command: list[str], database: str, hint: str, tmp_path: Path
) -> None:
    """Pointed at a missing SQLite file, a command that reads one says so (it used to create the file
    and its folders, then say "the mirror is empty" or "certificate_unknown")."""
    missing = tmp_path / "typo" / "finvault.db"
    result = run_finvault(*command, "--db", str(missing))
    assert_one_line_error(result, "database_missing", f"the {database} {missing} does not exist", hint)
    assert result.returncode == 2
    assert not missing.parent.exists()


def test_the_commands_that_start_a_database_still_do(tmp_path: Path) -> None:
    store = tmp_path / "new" / "issuer.db"
    made = run_finvault("issuer-api", "key", "create", "--name", "ci", "--scope", "issue", "--db", str(store))
    assert made.returncode == 0, made.stderr
    assert store.exists()
    listed = run_finvault("issuer-api", "key", "list", "--db", str(store))
    assert listed.returncode == 0, listed.stderr
    assert "ci" in listed.stdout


def test_keygen_without_a_terminal_names_both_ways_to_give_the_passphrase(tmp_path: Path) -> None:
    result = run_finvault("issuer", "keygen", "--out", str(tmp_path / "keys"))
    assert_one_line_error(
        result, "config_error", "no terminal", "--passphrase-file", "FINVAULT_SIGNING_KEY_PASSPHRASE"
    )
    assert not (tmp_path / "keys").exists()


def test_a_keystore_password_without_a_terminal_names_both_ways_to_give_it(
    anvil: DevChain, tmp_path: Path
) -> None:
    keystore = tmp_path / "account.json"
    write_keystore(keystore, b"\x01" * 32, "a long enough password")
    result = run_finvault("deploy", "--rpc", anvil.rpc_url, "--keystore", str(keystore))
    assert_one_line_error(result, "--password-file", "FINVAULT_KEYSTORE_PASSWORD")


def test_verify_without_a_registry_names_node_as_the_other_way(tmp_path: Path) -> None:
    receipt = tmp_path / "receipt.json"
    receipt.write_text("{}")
    result = run_finvault("verify", str(receipt))
    assert_one_line_error(result, "config_error", "no registry address", "--registry", "--node URL")
    assert result.returncode == 2


def readme_tour() -> str:
    """The README's five-minute tour: the ``sh`` block after its ``<!-- tour`` marker."""
    _, marker, rest = (ROOT / "README.md").read_text().partition("<!-- tour:")
    assert marker, "README.md lost its tour marker"
    block = re.search(r"^```sh\n(.*?)^```$", rest, re.DOTALL | re.MULTILINE)
    assert block is not None
    return block.group(1)


@pytest.mark.slow(seconds=15)
def test_readme_tour(tmp_path: Path, reserved_port: int) -> None:
    """The tour pasted into bash beside a running demo (in a scratch folder laid out like a checkout,
    its chain on a port of the test's), which may not have its node on 8000: VALID, VALID again with
    the grade withheld, then REVOKED through the node once it has seen the revocation, REVOKED from
    the chain, its bit set in the republished status list, and no drift."""
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINVAULT_")}
    with (tmp_path / "demo.log").open("w") as log:
        demo = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "demo.py"), "--chain-port", str(reserved_port)],
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            ready = tmp_path / ".finvault" / "demo" / "env.json"
            deadline = time.monotonic() + 180
            while not ready.exists():
                assert demo.poll() is None, (tmp_path / "demo.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "demo.log").read_text()
                time.sleep(0.2)
            tour = subprocess.run(
                ["bash", "-c", readme_tour()], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                capture_output=True, text=True, timeout=180, check=False,
            )  # fmt: skip
        finally:
            demo.send_signal(signal.SIGINT)
            assert demo.wait(timeout=60) == 0
    out = tour.stdout
    assert tour.returncode == 0, out + tour.stderr  # the last step: reconcile, no drift
    receipt = ".finvault/demo/receipts/demo-0001.json"
    assert out.count(f"{receipt}: VALID") == 1
    assert "shared.json: VALID" in out  # the holder's smaller receipt
    assert "demo-0001: revoked (superseded) in block" in out
    assert out.count(f"{receipt}: REVOKED") == 2  # through the node, then straight from the chain
    assert out.count("certificate revoked: superseded (4)") == 2
    assert ": no drift (" in out  # the republished status list agrees with the chain
    published = json.loads((tmp_path / ".finvault" / "demo" / "receipts" / "status" / "1.json").read_text())
    jwt = json.loads((tmp_path / receipt).read_text())["credential"].split("~")[0]
    entry = read_entry(json.loads(b64url_decode(jwt.split(".")[1])))
    assert entry is not None
    assert set_indexes(list_bits(published)) == [entry[1]]  # the revocation reached the list
