"""The order tests start in a parallel run (pytest-xdist, as ``./scripts/test`` runs them).

Workers take tests one at a time in collection order (``--dist load --maxschedchunk 1``), so a long
test collected late would start late and end the run alone on one worker while the others idle.
In a worker, the tests marked ``slow`` therefore come first, longest first (by the mark's
``seconds``, measured alone on an idle machine); the rest keep pytest's order, which groups them by
module so that module-scoped fixtures are built once per worker. A serial run keeps pytest's order.
"""

from __future__ import annotations

import pytest

#: What a ``slow`` mark without ``seconds`` stands for: about the mark's threshold.
SLOW_SECONDS = 1.0


def expected_seconds(item: pytest.Item) -> float:
    """Roughly how long ``item`` takes alone: its ``slow`` mark's ``seconds``; 0 if not marked."""
    mark = item.get_closest_marker("slow")
    if mark is None:
        return 0.0
    return float(mark.kwargs.get("seconds", SLOW_SECONDS))


@pytest.hookimpl(trylast=True)  # after pytest's own reordering (by higher-scoped fixtures)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: every worker sorts alike (a stable sort)
        items.sort(key=lambda item: -expected_seconds(item))
