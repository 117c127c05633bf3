"""Two independent SD-JWT verifiers for the tests, pinned and offline: OpenWallet Foundation's
TypeScript @sd-jwt/core 0.19.0 (tests/tools/sd_jwt_verify.mjs under Node) and the Python reference
implementation ``sd-jwt`` 0.10.4 (PyPI, the dev extra)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from chain.core.encoding import b64url

ROOT = Path(__file__).resolve().parents[2]
NODE_VERIFIER = ROOT / "tests" / "tools" / "sd_jwt_verify.mjs"

PublicKey = ed25519.Ed25519PublicKey | rsa.RSAPublicKey


def public_jwk(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | PublicKey) -> dict[str, str]:
    """The public JWK (RFC 7517/8037) of an Ed25519 or RSA key, private or public."""
    public = key.public_key() if isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) else key
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    numbers = public.public_numbers()
    return {
        "kty": "RSA",
        "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
    }


def sd_jwt_core(items: list[tuple[str, dict[str, str], str]]) -> list[dict[str, Any]]:
    """``{"verified", "payload", "header", "error"}`` from @sd-jwt/core for each ``(sd_jwt, jwk, alg)``."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH: FinVault's setup needs Node 20")
    done = subprocess.run(
        [node, str(NODE_VERIFIER)],
        input=json.dumps([{"sdJwt": sd_jwt, "jwk": jwk, "alg": alg} for sd_jwt, jwk, alg in items]),
        capture_output=True, text=True, check=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def reference_payload(sd_jwt: str, jwk: dict[str, str]) -> dict[str, Any] | None:
    """The payload the PyPI reference ``sd-jwt`` verifies and processes, or None if it refuses."""
    from jwcrypto.jwk import JWK  # type: ignore[import-untyped]  # installed with sd-jwt (dev extra)
    from sd_jwt.verifier import SDJWTVerifier  # type: ignore[import-untyped]

    issuer_key = JWK(**jwk)
    try:
        payload: dict[str, Any] = SDJWTVerifier(
            sd_jwt, lambda _iss, _header: issuer_key
        ).get_verified_payload()
    except Exception:  # the reference raises assorted exceptions; any of them is a refusal
        return None
    return payload
