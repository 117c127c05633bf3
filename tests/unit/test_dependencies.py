"""The architecture's dependency rules, checked on the source."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: The pure core: no I/O, no clock, no randomness of its own, no network or database clients.
PURE_MODULES = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "chain" / "core").glob("*.py"))
IO_MODULES = {
    "httpx", "requests", "urllib", "socket", "subprocess", "sqlalchemy", "aiosqlite", "web3", "time",
    "os", "secrets", "random", "pathlib", "chain.rpc", "chain.tx", "chain.dev.devchain", "chain.registry",
}  # fmt: skip
#: Calls that read a clock, the filesystem or the OS's randomness (keys and salts included).
IO_CALLS = {
    "generate",
    "generate_private_key",
    "BestAvailableEncryption",
    "token_bytes",
    "now",
    "utcnow",
    "today",
    "open",
    "urandom",
    "read_text",
    "read_bytes",
    "write_text",
    "write_bytes",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def top_level(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("chain", {"issuer", "indexer", "node", "scripts"}),
        ("issuer", {"indexer", "node", "scripts"}),
        ("indexer", {"issuer", "node", "scripts"}),
        ("node", {"issuer", "scripts"}),
    ],
)
def test_imports_point_one_way(package: str, forbidden: set[str]) -> None:
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = top_level(imported_modules(path)) & forbidden
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_core_does_no_io(module: str) -> None:
    imported = imported_modules(ROOT / module)
    bad = (top_level(imported) | imported) & IO_MODULES
    assert not bad, f"{module} imports {sorted(bad)}"
    tree = ast.parse((ROOT / module).read_text())
    calls = {
        node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }
    allowed = PACKAGE_DATA_READERS.get(module, set())
    assert not (calls & IO_CALLS) - allowed, f"{module} calls {sorted((calls & IO_CALLS) - allowed)}"


#: Core modules that read files shipped inside the package (immutable like the code beside them,
#: read once at import, never a path from outside): the JSON-LD contexts of chain/core/contexts/.
PACKAGE_DATA_READERS = {"chain/core/jsonld.py": {"read_bytes"}}


def test_runtime_imports_without_ape_or_web3() -> None:
    probe = (
        "import sys; sys.modules['ape'] = sys.modules['web3'] = None\n"  # importing either now fails
        "import chain.cli, chain.registry, chain.dev.devchain, node.cli, node.app, indexer.cli\n"
        "import issuer.cli, issuer.api\n"
        "assert not any(m.split('.')[0] in ('ape', 'web3') for m in sys.modules if sys.modules[m])\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=ROOT)


#: What each package may never load, directly or through anything it imports.
FORBIDDEN_TRANSITIVELY = {
    "chain": {"issuer", "indexer", "node", "scripts"},
    "issuer": {"indexer", "node", "scripts"},
    "indexer": {"issuer", "node", "scripts"},
    "node": {"issuer", "scripts"},
}


def loaded_modules(modules: list[str], path: Path = ROOT) -> set[str]:
    """Every module in ``sys.modules`` of a fresh interpreter after importing ``modules``."""
    probe = (
        "import importlib, json, sys\n"
        f"sys.path.insert(0, {str(path)!r})\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(json.loads(done.stdout))


def loaded_by(modules: list[str], path: Path = ROOT) -> set[str]:
    """The top-level packages a fresh interpreter holds after importing ``modules``."""
    return top_level(loaded_modules(modules, path))


def package_modules(package: str) -> list[str]:
    """Every module of ``package``, by dotted name (migration scripts excluded: Alembic runs them)."""
    return [
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN_TRANSITIVELY))
def test_no_package_loads_what_it_must_not_even_indirectly(package: str) -> None:
    modules = [name for name in package_modules(package) if not name.startswith("chain.dev")]
    loaded = loaded_modules(modules)
    assert package in top_level(loaded)
    assert not top_level(loaded) & FORBIDDEN_TRANSITIVELY[package], (
        f"{package} loads {sorted(top_level(loaded) & FORBIDDEN_TRANSITIVELY[package])}"
    )
    dev_tools = sorted(name for name in loaded if name.startswith("chain.dev"))
    assert not dev_tools, f"{package} loads the development tools {dev_tools} at runtime"


def test_the_transitive_check_catches_a_planted_violation(tmp_path: Path) -> None:
    """A module that imports nothing forbidden itself, but imports one that does, is caught."""
    (tmp_path / "planted").mkdir()
    (tmp_path / "planted" / "__init__.py").write_text("from planted import middle\n")
    (tmp_path / "planted" / "middle.py").write_text("import issuer.store\n")
    assert "issuer" in loaded_by(["planted"], tmp_path)
    assert not imported_modules(tmp_path / "planted" / "__init__.py") & {
        "issuer"
    }  # the direct check misses it


#: What the pure core may never load: the rest of the project, and any HTTP, database, web, CLI,
#: scheduler or chain-client package.
CORE_FORBIDDEN = {
    "issuer", "indexer", "node", "scripts", "httpx", "requests", "urllib3", "sqlalchemy", "alembic",
    "psycopg", "fastapi", "starlette", "uvicorn", "click", "apscheduler", "web3", "ape", "tqdm",
}  # fmt: skip


def test_the_core_is_walled_in() -> None:
    """``chain.core`` loads nothing of the project outside itself, and no I/O package, even indirectly."""
    loaded = loaded_modules(package_modules("chain/core"))
    outside = sorted(m for m in loaded if m.startswith("chain.") and not m.startswith("chain.core"))
    assert not outside, f"chain.core loads {outside}"
    assert not top_level(loaded) & CORE_FORBIDDEN, sorted(top_level(loaded) & CORE_FORBIDDEN)
