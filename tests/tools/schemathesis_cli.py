"""Runs the ``schemathesis`` command against a live server's ``/openapi.json`` (bounded, seeded).

Positive mode checks that answers to well-formed requests conform to the schema
(:data:`CONFORMANCE`); negative mode (malformed bodies, parameters of the wrong type) only that
nothing is a server error.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

Run = subprocess.CompletedProcess[str]

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CONFORMANCE = (
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
)
SEED = 20261123


def schemathesis_run(base_url: str, token: str, tmp_path: Path, *args: str, timeout: float = 420) -> Run:
    """``schemathesis run`` with a bearer token on every request; extra ``args`` pick mode and limits."""
    return subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            f"{base_url}/openapi.json",
            f"--seed={SEED}",
            "--workers=1",
            "--request-timeout=20",
            "--generation-database=none",
            "--no-color",
            f"--header=Authorization: Bearer {token}",
            f"--report-dir={tmp_path / 'schemathesis'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=tmp_path,
    )


def positive(
    base_url: str, token: str, tmp_path: Path, max_examples: int
) -> subprocess.CompletedProcess[str]:
    return schemathesis_run(
        base_url,
        token,
        tmp_path,
        "--mode=positive",
        f"--checks={CONFORMANCE}",
        f"--max-examples={max_examples}",
        "--phases=examples,coverage,fuzzing",
    )


def negative(
    base_url: str, token: str, tmp_path: Path, max_examples: int
) -> subprocess.CompletedProcess[str]:
    return schemathesis_run(
        base_url,
        token,
        tmp_path,
        "--mode=negative",
        "--checks=not_a_server_error",
        f"--max-examples={max_examples}",
        "--phases=coverage,fuzzing",
    )


def output(run: Run) -> str:
    """What to show when a run failed."""
    return run.stdout[-6000:] + run.stderr[-2000:]
