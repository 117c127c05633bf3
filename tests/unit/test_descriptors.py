"""A server makes room for its connection cap in the process's open-file limit, or refuses to start.

With the cap above ``ulimit -n``, ``accept()`` fails with EMFILE before the cap is reached and every
client waits, ``/health`` included. Each case runs in a fresh interpreter whose limits it sets
first, so this test process's own limit is never touched.
"""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}))
from chain.errors import ConfigError
from chain.service.connections import ConnectionLimits, reserve_descriptors
try:
    reserve_descriptors(ConnectionLimits(max_connections={cap}))
except ConfigError as exc:
    print("refused:", exc.message)
    sys.exit(2)
print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def run(soft: int, hard: int, cap: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT.format(soft=soft, hard=hard, cap=cap)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(
    resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 2_000, reason="needs a hard limit of 2,000"
)
def test_the_soft_limit_is_raised_to_fit_the_cap() -> None:
    raised = run(256, 2_000, 1_000)
    assert raised.returncode == 0, raised.stderr
    assert int(raised.stdout) == 1_000 + 128


def test_a_limit_that_already_fits_is_left_alone() -> None:
    kept = run(512, 512, 100)
    assert kept.returncode == 0, kept.stderr
    assert int(kept.stdout) == 512


def test_a_hard_limit_below_the_cap_refuses_to_start_in_one_line() -> None:
    refused = run(256, 256, 1_000)
    assert refused.returncode == 2, refused.stderr
    assert refused.stdout.strip() == (
        "refused: FINVAULT_HTTP_MAX_CONNECTIONS=1000 needs 1,128 open files, and this process may "
        "open at most 256 (ulimit -Hn): lower the cap or raise the limit"
    )
