"""did:web issuer identity: URLs, the did.json an issuer publishes, and how a node judges one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ed25519

from chain.core.data_integrity import multikey
from chain.core.identity import (
    IdentityError,
    caip10,
    did_web_document,
    forbidden_address,
    judge,
    parse_did_web,
)
from chain.core.signing import public_key_info
from chain.keys import generate_private_key
from issuer.registration import SIGNING_PUBLIC_KEY_FILE, issuer_group, load_pem_public

ISSUER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
REGISTRY = "0x5fbdb2315678afecb367f032d93f642f64180aa3"


@pytest.mark.parametrize(
    ("did", "domain", "url"),
    [
        ("did:web:uni.example", "uni.example", "https://uni.example/.well-known/did.json"),
        ("did:web:uni.example%3A8443", "uni.example:8443", "https://uni.example:8443/.well-known/did.json"),
        ("did:web:uni.example:issuers:42", "uni.example", "https://uni.example/issuers/42/did.json"),
    ],
)
def test_did_web_urls_follow_the_method(did: str, domain: str, url: str) -> None:
    where = parse_did_web(did)
    assert (where.domain, where.url) == (domain, url)


@pytest.mark.parametrize(
    "did",
    [
        "did:key:z6Mk",
        "did:web:",
        "did:web:a.example%2Fevil",  # only the port may be percent-encoded in the domain part
        "did:web:%61.example",
        "did:web:a.example%3A80%3A1",
        "did:web:a.example%3A0",
        "did:web:a.example%3A65536",
        "did:web:a.example%3A080",
        "did:web:a_b.example",  # not a host name
        "did:web:-a.example",
        "did:web:a..example",
        "did:web:user@a.example",
        "did:web:a.example?x",
        "did:web:a.example#x",
        "did:web:xn--zz.example",  # an A-label that decodes to nothing
        "did:web:\uff45xample.com",  # full-width: refused, never mapped to "example.com"
        "did:web:a.example:x%2Fy",  # a segment may not encode "/", "?", "#", "%", "\\" or controls
        "did:web:a.example:x%3Fy",
        "did:web:a.example:x%23y",
        "did:web:a.example:x%25",
        "did:web:a.example:x%5Cy",
        "did:web:a.example:x%00",
        "did:web:a.example:..",  # dot segments climb
        "did:web:a.example:%2e",
        "did:web:a.example::x",  # empty segment
        "did:web:a.example:x/y",  # raw characters a DID may not carry
        "did:web:a.example:%FF",  # not UTF-8
        "did:web:" + "a" * 2000,
    ],
)
def test_what_is_not_a_plain_did_web_is_refused(did: str) -> None:
    with pytest.raises(IdentityError):
        parse_did_web(did)


def test_locations_show_host_and_path_and_idns_in_both_forms() -> None:
    at_path = parse_did_web("did:web:Uni.Example%3a8443:issuers:%C3%A9cole")
    assert at_path.location == "uni.example:8443/issuers/%C3%A9cole"
    assert at_path.url == "https://uni.example:8443/issuers/%C3%A9cole/did.json"
    assert at_path.unicode_location is None
    look_alike = parse_did_web("did:web:\u0430pple.com:ok")  # Cyrillic a
    assert look_alike.host == "xn--pple-43d.com"
    assert look_alike.location == "xn--pple-43d.com/ok"
    assert look_alike.unicode_location == "\u0430pple.com/ok"
    written_ascii = parse_did_web("did:web:xn--pple-43d.com")
    assert (written_ascii.location, written_ascii.unicode_location) == ("xn--pple-43d.com", "\u0430pple.com")


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link_local"),
        ("fe80::1%eth0", "link_local"),
        ("0.0.0.0", "unspecified"),  # noqa: S104  (judged, never bound)
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "shared"),
        # IANA special-purpose ranges ipaddress versions disagree on: the same kind on every one.
        ("192.0.0.8", "ietf_protocol"),  # global to Python 3.11.7's ipaddress
        ("192.0.0.9", "ietf_protocol"),  # anycast IANA calls reachable: no did.json lives there
        ("::ffff:192.0.0.8", "ietf_protocol"),
        ("198.18.0.1", "benchmarking"),
        ("2001:4:112::1", "ietf_protocol"),
        ("2001:20::1", "ietf_protocol"),
        ("64:ff9b:1::1", "translation"),
        ("3fff::1", "documentation"),  # global to Python 3.11.7's ipaddress
        ("5f00::1", "segment_routing"),
        ("2002:7f00:1::1", "tunnel"),
        ("93.184.216.34", None),
        ("2606:2800:220:1::1", None),
    ],
)
def test_only_public_unicast_addresses_may_be_fetched(address: str, kind: str | None) -> None:
    assert forbidden_address(address) == kind


def test_the_published_document_names_the_keys_and_the_on_chain_account() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    document = did_web_document(
        "Certs.Uni.example",
        chain_id=137,
        registry=REGISTRY,
        issuer=ISSUER,
        multikeys=[multikey(key.public_key())],
    )
    did = "did:web:certs.uni.example"
    assert document["id"] == did
    assert document["alsoKnownAs"] == [f"eip155:137:{ISSUER.lower()}"]
    [method] = document["verificationMethod"]
    assert method == {
        "id": f"{did}#{multikey(key.public_key())}",
        "type": "Multikey",
        "controller": did,
        "publicKeyMultibase": multikey(key.public_key()),
    }
    assert document["assertionMethod"] == [method["id"]]
    assert document["service"][0]["serviceEndpoint"] == caip10(137, REGISTRY)

    assert judge(document, did, chain_id=137, issuer=ISSUER) == "verified"
    assert judge(document, did, chain_id=80002, issuer=ISSUER) == "mismatch"  # another chain
    assert judge(document, did, chain_id=137, issuer=REGISTRY) == "mismatch"  # another account
    assert judge(document, "did:web:other.example", chain_id=137, issuer=ISSUER) == "mismatch"
    assert judge({"id": did}, did, chain_id=137, issuer=ISSUER) == "mismatch"
    assert judge("not a document", did, chain_id=137, issuer=ISSUER) == "mismatch"


def test_finvault_issuer_did_web_writes_the_document(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / SIGNING_PUBLIC_KEY_FILE).write_bytes(load_pem_public(public_key_info(key).der))
    out = tmp_path / "did.json"
    args = ["did-web", "--domain", "certs.uni.example", "--key", str(keys), "--issuer", ISSUER,
            "--chain-id", "137", "--registry", REGISTRY, "-o", str(out)]  # fmt: skip
    result = CliRunner(mix_stderr=False).invoke(issuer_group, args)
    assert result.exit_code == 0, result.stderr
    assert "https://certs.uni.example/.well-known/did.json" in result.stderr
    document = json.loads(out.read_text())
    assert document["verificationMethod"][0]["publicKeyMultibase"] == multikey(key.public_key())
    assert judge(document, "did:web:certs.uni.example", chain_id=137, issuer=ISSUER) == "verified"

    rsa = tmp_path / "rsa"
    rsa.mkdir()
    (rsa / SIGNING_PUBLIC_KEY_FILE).write_bytes(
        load_pem_public(public_key_info(generate_private_key("rsa-2048")).der)
    )
    refused = CliRunner(mix_stderr=False).invoke(issuer_group, [*args[:3], "--key", str(rsa), *args[5:]])
    assert refused.exit_code != 0
    assert "only Ed25519 keys have a Multikey form" in str(refused.exception)
