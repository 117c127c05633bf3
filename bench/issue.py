"""Securing on one core: what sealing costs per certificate, against the reference SD-JWT issuer.

    .venv/bin/python bench/issue.py [--docs N] [--profile]

Builds N realistic W3C VC 2.0 degree credentials (a subject of 7 claims, one nested), then measures
certificates/s in this one process for what a sealing worker does to each (``finvault-receipt/2``):

- ``secure_sd_jwt`` with an Ed25519 key (the default): every claim of the subject disclosable
  (:func:`chain.core.secured.default_disclosable`), decoys, the JWS signed; and with RSA-2048;
- ``secure_data_integrity`` (``--securing data-integrity``): an ``eddsa-jcs-2022`` proof;
- ``seal_certificates``: the sealing worker's whole loop (the credential's JSON read, secured, the
  SD-JWT and its digests out), which ``bench/issuer.py`` runs in every worker.

The baseline, measured in the same run on the same credentials: the SD-JWT reference
implementation, PyPI ``sd-jwt`` 0.10.4 (``SDJWTIssuer``, jwcrypto, EdDSA), making the same claims
disclosable with decoys. Its output is processed by FinVault's SD-JWT verifier to check that both
disclose the same claims. This answers a question ``bench/issuer.py`` does not: the cost of
securing alone, per core, without the database, the chain or the files. Informational: exits 0.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import json
import os
import platform
import pstats
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chain.core.sd_jwt import parse_sd_jwt, process_disclosures, verify_sd_jwt
from chain.core.secured import (
    SUBJECT_ALWAYS_SHOWN,
    secure_data_integrity,
    secure_sd_jwt,
)
from chain.core.signing import PrivateKey
from chain.keys import generate_private_key
from issuer.pipeline import SealContext, seal_certificates

RSA_DOCS = 2_000
REFERENCE_DOCS = 5_000
PROFILE_DOCS = 20_000
CREATED = "2026-06-30T00:00:00Z"

Credential = dict[str, Any]

FIRST_NAMES = ["Jane", "Ahmed", "Zoë", "José", "Mei", "Olusegun", "Ingrid", "Łukasz", "Priya", "Hiroshi"]
LAST_NAMES = ["Doe", "Al-Farsi", "Müller", "García", "Chen", "Adeyemi", "Sørensen", "Nowak", "Iyer", "山田"]
DEGREES = [
    ("BachelorDegree", "Bachelor of Science in Computer Science"),
    ("BachelorDegree", "Bachelor of Arts in History"),
    ("MasterDegree", "Master of Business Administration"),
    ("MasterDegree", "Master of Engineering in Electrical Engineering"),
    ("DoctoralDegree", "Doctor of Philosophy in Molecular Biology"),
    ("BachelorDegree", "Licenciatura en Derecho"),
]
GRADES = ["First Class Honours", "Upper Second Class", "Lower Second Class", "Summa cum laude", "Pass"]


def make_credentials(n: int, seed: int = 2026) -> list[Credential]:
    """``n`` degree credentials shaped like the W3C VC 2.0 examples."""
    rng = random.Random(seed)
    epoch = dt.date(2010, 1, 1)
    credentials = []
    for _ in range(n):
        degree_type, degree_name = rng.choice(DEGREES)
        graduated = epoch + dt.timedelta(days=rng.randrange(15 * 365))
        born = graduated - dt.timedelta(days=rng.randrange(20 * 365, 35 * 365))
        credentials.append(
            {
                "@context": ["https://www.w3.org/ns/credentials/v2"],
                "id": f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}",
                "type": ["VerifiableCredential", "UniversityDegreeCredential"],
                "issuer": {"id": "did:web:registrar.example.edu", "name": "Example University"},
                "validFrom": f"{graduated.isoformat()}T{rng.randrange(8, 18):02d}:00:00Z",
                "credentialSubject": {
                    "id": f"did:example:{rng.getrandbits(96):024x}",
                    "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                    "birthDate": born.isoformat(),
                    "studentId": f"S{rng.randrange(10**8):08d}",
                    "degree": {"type": degree_type, "name": degree_name},
                    "grade": rng.choice(GRADES),
                    "gpa": round(rng.uniform(2.0, 4.0), 2),
                },
            }
        )
    return credentials


# --- the baseline: the SD-JWT reference implementation ------------------------------------------


def reference_claims(credential: Credential) -> Credential:
    """``credential`` marked up for ``sd-jwt``'s ``SDJWTIssuer`` with the claims FinVault makes
    disclosable by default: every member of the subject but ``id`` and ``type``, and everything
    under them (members and array elements)."""
    from sd_jwt.common import SDObj  # type: ignore[import-untyped]  # the dev extra

    def everything(node: Any) -> Any:
        if isinstance(node, dict):
            return {SDObj(key): everything(value) for key, value in node.items()}
        if isinstance(node, list):
            return [SDObj(everything(value)) for value in node]
        return node

    subject = credential["credentialSubject"]
    marked = {
        key if key in SUBJECT_ALWAYS_SHOWN else SDObj(key): value
        if key in SUBJECT_ALWAYS_SHOWN
        else everything(value)
        for key, value in subject.items()
    }
    return {**credential, "credentialSubject": marked}


def reference_issuer(key: PrivateKey) -> Callable[[Credential], str]:
    """Issues with ``sd-jwt`` 0.10.4 (EdDSA through jwcrypto, decoys on)."""
    from jwcrypto.jwk import JWK  # type: ignore[import-untyped]
    from sd_jwt.issuer import SDJWTIssuer  # type: ignore[import-untyped]

    from tests.tools.sd_jwt_peers import public_jwk

    private = key.private_bytes_raw()  # type: ignore[union-attr]
    jwk = JWK(**public_jwk(key), d=_b64url(private))

    def issue(credential: Credential) -> str:
        issued: str = SDJWTIssuer(
            reference_claims(credential), jwk, sign_alg="EdDSA", add_decoy_claims=True
        ).sd_jwt_issuance
        return issued

    return issue


def _b64url(data: bytes) -> str:
    from chain.core.encoding import b64url

    return b64url(data)


# --- measurements -----------------------------------------------------------------------------


def timed(run: Callable[[], object], count: int) -> float:
    """certificates/s of ``run`` over ``count`` credentials (best of two runs)."""
    best = float("inf")
    for _ in range(2):
        gc.collect()
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return count / best


def row(label: str, per_second: float, note: str = "") -> None:
    micros = 1e6 / per_second
    print(f"  {label:<52} {per_second:>9,.0f}/s  {micros:>7.1f} µs each  {note}".rstrip())


def check_agreement(
    key: PrivateKey, credentials: Sequence[Credential], reference: Callable[[Credential], str]
) -> None:
    """FinVault's SD-JWT verifies and gives back the credential; the reference's discloses the same claims."""
    for credential in credentials:
        ours = secure_sd_jwt(
            credential, key, random_bytes=os.urandom, controller="did:web:registrar.example.edu"
        )
        assert isinstance(ours.value, str)
        verified = verify_sd_jwt(ours.value, key.public_key(), expected_alg="EdDSA")  # type: ignore[arg-type]
        if verified.payload != credential:
            sys.exit("bench/issue.py: FinVault's SD-JWT does not give back its credential")
        theirs = parse_sd_jwt(reference(credential))
        if (
            len(theirs.disclosures) != len(parse_sd_jwt(ours.value).disclosures)
            or process_disclosures(theirs.payload, theirs.disclosures) != credential
        ):
            sys.exit("bench/issue.py: the reference discloses other claims than FinVault")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs", type=int, default=20_000, help="credentials to secure (default 20,000)")
    parser.add_argument("--profile", action="store_true", help="also profile the sealing worker's loop")
    args = parser.parse_args(argv)
    if args.docs < 1:
        parser.error("--docs must be at least 1")

    credentials = make_credentials(args.docs)
    ed25519 = generate_private_key("ed25519")
    rsa = generate_private_key("rsa-2048")
    reference = reference_issuer(ed25519)
    check_agreement(ed25519, credentials[:50], reference)
    controller = "did:web:registrar.example.edu"
    context = SealContext.for_key(ed25519, datetime.now(UTC), controller)
    rows = [(str(i), json.dumps(c, ensure_ascii=False)) for i, c in enumerate(credentials)]
    disclosures = len(
        parse_sd_jwt(secure_sd_jwt(credentials[0], ed25519, random_bytes=os.urandom).value).disclosures
    )  # type: ignore[arg-type]

    print(
        f"bench/issue.py: {args.docs:,} W3C VC 2.0 credentials ({disclosures} disclosures each), one "
        f"process; Python {platform.python_version()} on {platform.machine()} {platform.system()}, "
        f"{os.cpu_count()} CPUs visible, load average {os.getloadavg()[0]:.2f}"
    )

    def sd_jwt_all(key: PrivateKey, items: Sequence[Credential]) -> None:
        for credential in items:
            secure_sd_jwt(credential, key, random_bytes=os.urandom, controller=controller)

    def data_integrity_all(items: Sequence[Credential]) -> None:
        for credential in items:
            secure_data_integrity(
                credential, ed25519, created=CREATED, random_bytes=os.urandom, controller=controller
            )

    sd_jwt = timed(lambda: sd_jwt_all(ed25519, credentials), len(credentials))
    row("secure_sd_jwt, Ed25519 (EdDSA)", sd_jwt)
    rsa_docs = credentials[:RSA_DOCS]
    row(
        "secure_sd_jwt, RSA-2048 (RS256)",
        timed(lambda: sd_jwt_all(rsa, rsa_docs), len(rsa_docs)),
        f"({len(rsa_docs):,})",
    )
    row(
        "secure_data_integrity, Ed25519 (eddsa-jcs-2022)",
        timed(lambda: data_integrity_all(credentials), len(credentials)),
    )
    sealing = timed(lambda: seal_certificates(context, rows), len(rows))
    row("seal_certificates: JSON in, SD-JWT and digests out", sealing)
    reference_docs = credentials[:REFERENCE_DOCS]
    baseline = timed(lambda: [reference(c) for c in reference_docs], len(reference_docs))
    row("baseline: sd-jwt 0.10.4 SDJWTIssuer, EdDSA, decoys", baseline, f"({len(reference_docs):,})")
    print(f"\n  secure_sd_jwt vs the reference issuer: {sd_jwt / baseline:.1f}x the certificates/s")
    print(
        f"  a sealing worker on each of 2 cores: at most {2 * sealing:,.0f} certificates/s from sealing alone"
    )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        seal_certificates(context, rows[:PROFILE_DOCS])
        profiler.disable()
        print(
            f"\ncProfile of seal_certificates, {min(len(rows), PROFILE_DOCS):,} credentials "
            "(top 20 by own time):"
        )
        pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats(pstats.SortKey.TIME).print_stats(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
