"""Where the mirror lives: its default URL, its migrations, and opening it (upgraded on start)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from chain.db import make_engine, migrate

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_MIRROR_URL = "sqlite:///.finvault/mirror.db"


def open_mirror(url: str) -> Engine:
    """An engine on the mirror at ``url`` with its schema at the newest version.

    Transactions default to ``BEGIN DEFERRED`` so the node's readers run alongside the indexer.
    """
    engine = make_engine(url)
    migrate(engine, MIGRATIONS)
    return engine
