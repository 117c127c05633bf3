"""Issuance throughput on one core: canonicalize + salt, sign, both; against a naive reference.

    .venv/bin/python bench/issue.py [--docs N] [--profile]

Builds N realistic W3C VC 2.0 degree credentials (15 fields each, varied values), then measures
docs/s in this one process for ``salt_document(cred, os.urandom)``, Ed25519 signing of the digest,
and the two together, plus RSA-2048 signing on fewer documents. The baseline is measured in the same
run on the same documents: a naive finvault-doc/1 implementation written here (per-field
``rfc8785.dumps([pointer, salt, value])`` + hashlib), so the printed ratio does not depend on the
machine. The target (canonicalize + Ed25519 sign >= 10,000 docs/s per core) is informational: the
script exits 0 either way.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import hashlib
import os
import platform
import pstats
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import rfc8785

from chain.core.canonical import SALT_BYTES, salt_document
from chain.core.signing import PrivateKey, sign_digest
from chain.keys import generate_private_key

TARGET_DOCS_PER_SECOND = 10_000
NAIVE_DOCS = 10_000
RSA_DOCS = 2_000
PROFILE_DOCS = 20_000

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
    """``n`` degree credentials shaped like the W3C VC 2.0 examples, 15 leaves each."""
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


# --- the naive baseline: finvault-doc/1 straight from its definition --------------------------


def naive_leaves(credential: Credential) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []

    def walk(node: Any, pointer: str) -> None:
        if isinstance(node, dict) and node:
            for key, child in node.items():
                walk(child, pointer + "/" + key.replace("~", "~0").replace("/", "~1"))
        elif isinstance(node, list) and node:
            for index, child in enumerate(node):
                walk(child, f"{pointer}/{index}")
        else:
            out.append((pointer, node))

    walk(credential, "")
    return out


def naive_digest(credential: Credential, random_bytes: Callable[[int], bytes]) -> bytes:
    leaves = naive_leaves(credential)
    pool = random_bytes(SALT_BYTES * len(leaves))
    hashes = []
    for i, (pointer, value) in enumerate(leaves):
        salt = "0x" + pool[i * SALT_BYTES : (i + 1) * SALT_BYTES].hex()
        hashes.append("0x" + hashlib.sha256(rfc8785.dumps([pointer, salt, value])).hexdigest())
    return hashlib.sha256(rfc8785.dumps(sorted(hashes))).digest()


def counter_stream(seed: bytes) -> Callable[[int], bytes]:
    def random_bytes(n: int) -> bytes:
        return b"".join(hashlib.sha256(seed + k.to_bytes(8, "big")).digest() for k in range(-(-n // 32)))[:n]

    return random_bytes


# --- measurements -----------------------------------------------------------------------------


def timed(run: Callable[[], object], count: int) -> float:
    """docs/s of ``run`` over ``count`` documents."""
    gc.collect()
    start = time.perf_counter()
    run()
    return count / (time.perf_counter() - start)


def canonicalize_all(credentials: Sequence[Credential]) -> list[bytes]:
    return [salt_document(credential, os.urandom).digest for credential in credentials]


def sign_all(key: PrivateKey, digests: Sequence[bytes]) -> list[bytes]:
    return [sign_digest(key, digest) for digest in digests]


def issue_all(key: PrivateKey, credentials: Sequence[Credential]) -> list[bytes]:
    return [sign_digest(key, salt_document(credential, os.urandom).digest) for credential in credentials]


def naive_all(credentials: Sequence[Credential]) -> list[bytes]:
    return [naive_digest(credential, os.urandom) for credential in credentials]


def check_agreement(credentials: Sequence[Credential]) -> None:
    """The fast path and the naive baseline compute the same digests from the same salts."""
    for i, credential in enumerate(credentials):
        stream = counter_stream(b"bench-%d" % i)
        if salt_document(credential, stream).digest != naive_digest(credential, stream):
            sys.exit(f"bench/issue.py: salt_document and the naive reference disagree on document {i}")


def row(label: str, docs_per_second: float, note: str = "") -> None:
    micros = 1e6 / docs_per_second
    print(f"  {label:<44} {docs_per_second:>10,.0f} docs/s  {micros:>8.1f} µs/doc  {note}".rstrip())


def profile(key: PrivateKey, credentials: Sequence[Credential]) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    issue_all(key, credentials)
    profiler.disable()
    print(f"\ncProfile of canonicalize + Ed25519 sign, {len(credentials):,} docs (top 15 by own time):")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.strip_dirs().sort_stats(pstats.SortKey.TIME).print_stats(15)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs", type=int, default=100_000, help="documents to issue (default 100,000)")
    parser.add_argument("--profile", action="store_true", help="also profile the combined path")
    args = parser.parse_args(argv)
    if args.docs < 1:
        parser.error("--docs must be at least 1")

    credentials = make_credentials(args.docs)
    fields = len(naive_leaves(credentials[0]))
    check_agreement(credentials[:200])
    ed25519 = generate_private_key("ed25519")
    rsa = generate_private_key("rsa-2048")
    naive_docs = credentials[:NAIVE_DOCS]
    rsa_docs = credentials[:RSA_DOCS]
    canonicalize_all(credentials[:1000])  # warm-up

    print(
        f"bench/issue.py: {args.docs:,} W3C VC 2.0 credentials ({fields} fields each), one process; "
        f"Python {platform.python_version()} on {platform.machine()} {platform.system()}, "
        f"{os.cpu_count()} CPUs visible"
    )
    digests: list[bytes] = []
    canonical = timed(lambda: digests.extend(canonicalize_all(credentials)), len(credentials))
    row("canonicalize + salt (salt_document)", canonical)
    signing = timed(lambda: sign_all(ed25519, digests), len(digests))
    row("Ed25519 sign of the digest", signing)
    combined = timed(lambda: issue_all(ed25519, credentials), len(credentials))
    row("canonicalize + Ed25519 sign", combined)
    rsa_signing = timed(lambda: sign_all(rsa, digests[:RSA_DOCS]), len(rsa_docs))
    row("RSA-2048 sign of the digest", rsa_signing, f"({len(rsa_docs):,} docs)")
    rsa_combined = timed(lambda: issue_all(rsa, rsa_docs), len(rsa_docs))
    row("canonicalize + RSA-2048 sign", rsa_combined, f"({len(rsa_docs):,} docs)")
    naive = timed(lambda: naive_all(naive_docs), len(naive_docs))
    row("baseline: naive rfc8785.dumps per field", naive, f"({len(naive_docs):,} docs)")

    print(f"\n  salt_document vs naive baseline: {canonical / naive:.1f}x the docs/s")
    naive_issue = 1 / (1 / naive + 1 / signing)
    print(f"  canonicalize + Ed25519 sign vs naive baseline + Ed25519 sign: {combined / naive_issue:.1f}x")
    verdict = "MET" if combined >= TARGET_DOCS_PER_SECOND else "NOT MET"
    print(
        f"\nTarget canonicalize + Ed25519 sign >= {TARGET_DOCS_PER_SECOND:,} docs/s per core: "
        f"{verdict} ({combined:,.0f} docs/s, {combined / TARGET_DOCS_PER_SECOND:.2f}x the target)"
    )
    if args.profile:
        profile(ed25519, credentials[:PROFILE_DOCS])
    return 0


if __name__ == "__main__":
    sys.exit(main())
