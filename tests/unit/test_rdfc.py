"""RDFC-1.0 (chain/core/rdfc.py) against two independent implementations: pyld's URDNA2015 (PyPI)
and Digital Bazaar's rdf-canonize (npm, tests/tools/rdf_canonize.mjs, one Node process for the run),
over Hypothesis datasets built to be hard: few predicates and many blank nodes, so that first-degree
hashes collide, with rings, cliques and self-loops; then the cost limit on a poison graph."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chain.core import jsonld, rdfc
from chain.core.rdfc import CanonicalizationTooCostly, Quad, canonicalize, iri, literal, nquad

ROOT = Path(__file__).resolve().parents[2]
UNBOUNDED = 10**9
P, Q = iri("http://example.org/p"), iri("http://example.org/q")


class RdfCanonize:
    """npm rdf-canonize behind a line protocol: one N-Quads document in, its canonical form out."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            ["node", str(ROOT / "tests" / "tools" / "rdf_canonize.mjs")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip

    def canonize(self, nquads: str, max_work_factor: int | None = None) -> dict[str, str]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps({"nquads": nquads, "maxWorkFactor": max_work_factor}) + "\n")
        self.process.stdin.flush()
        answer: dict[str, str] = json.loads(self.process.stdout.readline())
        return answer

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def rdf_canonize() -> Iterator[RdfCanonize]:
    peer = RdfCanonize()
    yield peer
    peer.close()


def pyld_urdna2015(nquads: str) -> str:
    nq = "application/n-quads"
    options = {"algorithm": "URDNA2015", "inputFormat": nq, "format": nq}
    result: str = jsonld._pyld.normalize(nquads, options)
    return result


def mentions_a_blank_node_twice(quad: Quad) -> bool:
    """pyld lists such a quad twice among the node's quads (rdf-canonize, a set: once), so its first
    degree hash differs: see test_pyld_differs_where_a_quad_names_a_blank_node_twice."""
    blanks = [term for term in (quad[0], quad[2], quad[3]) if term.startswith("_:")]
    return len(set(blanks)) < len(blanks)


def relabel(term: str) -> str:
    return f"_:x{term[2:]}" if term.startswith("_:") else term


def ring(n: int) -> list[Quad]:
    return [(f"_:n{i}", P, f"_:n{(i + 1) % n}", "") for i in range(n)]


def clique(n: int) -> list[Quad]:
    return [(f"_:n{i}", P, f"_:n{j}", "") for i in range(n) for j in range(n) if i != j]


# Literal text without the control characters pyld's URDNA2015 leaves raw (see the test below).
TEXT = st.text(alphabet=st.sampled_from('ab "\\\t\n\ré€😀'), max_size=4)


@st.composite
def datasets(draw: st.DrawFn) -> list[Quad]:
    blanks = [f"_:n{i}" for i in range(draw(st.integers(1, 5)))]
    iris = [iri("http://example.org/a"), iri("http://example.org/b")]
    literals = st.builds(literal, TEXT) | st.builds(
        literal, TEXT, st.just("http://www.w3.org/2001/XMLSchema#date")
    ) | st.builds(literal, TEXT, st.just("http://www.w3.org/1999/02/22-rdf-syntax-ns#langString"),
                  st.sampled_from(["en", "fr-CA"]))  # fmt: skip
    subject = st.sampled_from(blanks) | st.sampled_from(iris)
    object_ = st.sampled_from(blanks) | st.sampled_from(iris) | literals
    graph = st.just("") | st.sampled_from(blanks) | st.just(iri("http://example.org/g"))
    quads = draw(st.lists(st.tuples(subject, st.sampled_from([P, Q]), object_, graph), max_size=12))
    shape = draw(st.sampled_from(["none", "ring", "clique"]))
    extra = {"none": [], "ring": ring(len(blanks)), "clique": clique(min(len(blanks), 4))}[shape]
    return [*quads, *extra]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
@example(ring(6))
@example(clique(4))
@example([("_:n0", P, "_:n0", ""), ("_:n1", P, "_:n1", "")])  # two indistinguishable self-loops
@example([("_:n0", P, "_:n1", "_:n2"), ("_:n1", P, "_:n0", "_:n2"), ("_:n2", Q, literal("x"), "")])
def test_ours_matches_pyld_and_rdf_canonize(rdf_canonize: RdfCanonize, quads: list[Quad]) -> None:
    ours = canonicalize(quads, max_work=UNBOUNDED)
    document = "".join(nquad(quad) for quad in quads)
    assert rdf_canonize.canonize(document, max_work_factor=None) == {"canonical": ours}
    if not any(mentions_a_blank_node_twice(quad) for quad in quads):
        assert ours == pyld_urdna2015(document)
    # Canonical means independent of the input's labels and order.
    relabelled: list[Quad] = [(relabel(s), p, relabel(o), relabel(g)) for s, p, o, g in reversed(quads)]
    assert canonicalize(relabelled, max_work=UNBOUNDED) == ours


def test_control_characters_are_escaped_as_rdfc_1_0_says(rdf_canonize: RdfCanonize) -> None:
    """Where pyld's URDNA2015 writes U+0001 and U+0008 raw, RDFC-1.0 (and rdf-canonize) escape them."""
    quads: list[Quad] = [("_:n0", P, literal("a\x01b\x08c\x0cd\x7f"), "")]
    ours = canonicalize(quads)
    assert ours == '_:c14n0 <http://example.org/p> "a\\u0001b\\bc\\fd\\u007F" .\n'
    assert rdf_canonize.canonize(nquad(quads[0])) == {"canonical": ours}
    assert pyld_urdna2015(nquad(quads[0])) != ours  # the reason chain/core/rdfc.py exists
    assert iri("http://example.org/a b") == "<http://example.org/a\\u0020b>"


def test_pyld_differs_where_a_quad_names_a_blank_node_twice(rdf_canonize: RdfCanonize) -> None:
    """Found by Hypothesis: a self-loop beside an edge. Ours and rdf-canonize (which passes the W3C
    rdf-canon test suite) agree; pyld 3.3's URDNA2015 orders the two nodes the other way."""
    quads: list[Quad] = [("_:n0", P, "_:n0", ""), ("_:n0", P, "_:n1", "")]
    document = "".join(map(nquad, quads))
    ours = canonicalize(quads)
    assert ours == f"_:c14n0 {P} _:c14n0 .\n_:c14n0 {P} _:c14n1 .\n"
    assert rdf_canonize.canonize(document) == {"canonical": ours}
    assert pyld_urdna2015(document) == f"_:c14n1 {P} _:c14n0 .\n_:c14n1 {P} _:c14n1 .\n"


def test_a_poison_graph_is_refused_quickly(rdf_canonize: RdfCanonize) -> None:
    """An 8-clique of indistinguishable blank nodes takes 4.3 million steps (~19 s): refused at once."""
    started = time.perf_counter()
    with pytest.raises(CanonicalizationTooCostly, match=r"more than 10,000 steps .*\(8 blank nodes"):
        canonicalize(clique(8))
    assert time.perf_counter() - started < 2.0
    # rdf-canonize's default (maxWorkFactor 1) refuses it too.
    assert "Maximum deep iterations exceeded" in rdf_canonize.canonize(
        "".join(map(nquad, clique(8))), max_work_factor=1
    ).get("error", "")
    # What credentials hold is far inside the limit.
    assert canonicalize(ring(8)).count("_:c14n") == 16
    assert rdfc.MAX_WORK == 10_000
