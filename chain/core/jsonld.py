"""JSON-LD to RDF, offline: the contexts FinVault ships, and nothing from the network, ever.

What ``eddsa-rdfc-2022`` (:mod:`chain.core.data_integrity`) canonicalizes is the RDF dataset a
credential denotes. Getting there means JSON-LD expansion, which dereferences every ``@context``
URL. A verifier that fetched them would let whoever serves a context decide what a signed credential
says (and would make verification depend on a network), so :func:`document_loader` serves only the
contexts in ``chain/core/contexts/`` (copied from pinned npm packages: see its README) and refuses
any other URL with :class:`UnknownContextError`, naming it.

Expansion is also strict, the equivalent of the "safe mode" the Data Integrity specification asks
verifiers for: where a JSON-LD processor would silently drop a property whose term the context does
not define, or a type or ``@id`` that is not an absolute IRI, :func:`to_dataset` refuses the
document and names what would have been lost. A signature over a dataset that omits part of the
JSON would let that part change freely.

The JSON-LD processing itself is pyld's (PyPI ``pyld``); canonicalization is
:mod:`chain.core.rdfc`'s.
"""

from __future__ import annotations

import importlib.resources
import json
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from chain.core.errors import DataIntegrityError
from chain.core.rdfc import Quad, quads_from_pyld


def _import_pyld() -> Any:
    """pyld's ``jsonld`` module, imported with ``requests`` and ``aiohttp`` hidden.

    At import, pyld makes an HTTP client its default document loader if it finds one. Hidden, it
    falls back to its dummy loader, which refuses every URL: so the pure core loads no HTTP client
    (tests/unit/test_dependencies.py), and even a call that forgot :func:`document_loader` stays
    offline. The entries are restored at once: only this import sees them hidden.
    """
    hidden = ("requests", "aiohttp")
    saved = {name: sys.modules.get(name) for name in hidden}
    try:
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]  # importing it now raises ImportError
        from pyld import jsonld
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return jsonld


_pyld = _import_pyld()

VC_V2_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB_V3P0_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"

#: Every context URL FinVault resolves, and the file in ``chain/core/contexts/`` that holds it.
CONTEXT_FILES: Mapping[str, str] = {
    VC_V2_CONTEXT: "credentials-v2.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.2.json": "ob-v3p0-context-3.0.2.json",
    OB_V3P0_CONTEXT: "ob-v3p0-context-3.0.3.json",
}


def _load_contexts() -> dict[str, Any]:
    # Package data shipped beside this module, read once at import like code; never a path from outside.
    folder = importlib.resources.files(__package__ or "chain.core").joinpath("contexts")
    return {url: json.loads(folder.joinpath(name).read_bytes()) for url, name in CONTEXT_FILES.items()}


_CONTEXTS = _load_contexts()


#: JSON values (objects, arrays, scalars) a document may hold, and the most values one property may
#: hold (its array's elements, the elements of arrays nested in it included: JSON-LD flattens them
#: into one set of values), checked before expansion. pyld's expansion is quadratic in a property's
#: values (it compares each with those before it): 1,905 strings under one property, spread over
#: 15 nested arrays, took 1.1 s; 127 took 12 ms. An Open Badge holds about 50 values. At these
#: bounds the worst shape measured (14 properties of 64 values) verifies in tens of milliseconds
#: (docs/SECURITY.md).
MAX_JSONLD_VALUES = 1024
MAX_JSONLD_ARRAY = 64


class JsonLdTooLarge(DataIntegrityError):
    """A document beyond :data:`MAX_JSONLD_VALUES` values or :data:`MAX_JSONLD_ARRAY` under one property."""

    code = "jsonld_too_large"


def check_size(document: Any) -> None:
    """:class:`JsonLdTooLarge` unless ``document`` is within the bounds (walked without recursion)."""
    count, pending = 0, [document]
    while pending:
        value = pending.pop()
        count += 1
        if count > MAX_JSONLD_VALUES:
            raise JsonLdTooLarge(f"a JSON-LD document of more than {MAX_JSONLD_VALUES:,} values: refused")
        if isinstance(value, Mapping):
            pending.extend(value.values())
        elif isinstance(value, list):
            held = _values_of_property(value)
            if held > MAX_JSONLD_ARRAY:
                raise JsonLdTooLarge(
                    f"a JSON-LD property of {held:,} values; at most {MAX_JSONLD_ARRAY} are expanded"
                )
            pending.extend(value)


#: What one JSON value of a credential verified through JSON-LD and RDFC-1.0 (eddsa-rdfc-2022)
#: costs, in the JSON values of JCS work that budgets count: measured, 20-50 us a value against
#: about 4 us through JCS (docs/SECURITY.md).
JSONLD_VALUE_WEIGHT = 20
#: The least such a credential is charged, whatever its size: RDFC-1.0's step limit lets a small
#: graph of look-alike blank nodes cost as much as a credential of :data:`MAX_JSONLD_VALUES` values
#: (tests/integration/test_hostile_cost.py) before it is refused.
JSONLD_LEAST_CHARGE = JSONLD_VALUE_WEIGHT * MAX_JSONLD_VALUES


def values_in(document: Any, limit: int) -> int:
    """The JSON values in ``document`` (objects and arrays included), counted up to ``limit + 1``."""
    count, pending = 0, [document]
    while pending and count <= limit:
        value = pending.pop()
        count += 1
        if isinstance(value, Mapping):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return count


def _values_of_property(array: list[Any]) -> int:
    """The values an array gives its property once nested arrays are flattened into it."""
    count, pending = 0, list(array)
    while pending and count <= MAX_JSONLD_ARRAY:
        value = pending.pop()
        if isinstance(value, list):
            pending.extend(value)
        else:
            count += 1
    return count


class UnknownContextError(DataIntegrityError):
    """A JSON-LD context (or other document) that FinVault does not ship: refused, never fetched."""

    code = "jsonld_unknown_context"

    def __init__(self, url: str) -> None:
        super().__init__(
            f"JSON-LD context {url!r} is not one FinVault ships (it never fetches one); "
            f"known: {', '.join(sorted(CONTEXT_FILES))}"
        )
        self.url = url


class JsonLdError(DataIntegrityError):
    """A document that does not expand to RDF cleanly: invalid JSON-LD, or something would be dropped."""

    code = "jsonld_invalid"


def document_loader(url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """pyld's remote document for ``url`` if FinVault ships it; :class:`UnknownContextError` otherwise."""
    try:
        document = _CONTEXTS[url]
    except KeyError:
        raise UnknownContextError(url) from None
    # "static": pyld keeps what it resolved from this URL in its shared cache (it re-resolves an
    # untagged document on every expansion: 30% of expanding an Open Badge). The files never change.
    return {"contextUrl": None, "documentUrl": url, "document": document, "tag": "static"}


def _our_error(error: BaseException) -> DataIntegrityError | None:
    """The :class:`DataIntegrityError` (the loader's) that pyld wrapped, if any."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, DataIntegrityError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _relative_iris(expanded: Any) -> Iterator[str]:
    """``@id`` and ``@type`` values of expanded JSON-LD that are not absolute IRIs or blank nodes
    (RDF conversion drops them silently)."""
    if isinstance(expanded, list):
        for item in expanded:
            yield from _relative_iris(item)
    elif isinstance(expanded, dict):
        if "@value" in expanded:
            return  # a literal: its @type is a datatype IRI, checked below all the same
        for key, value in expanded.items():
            if key == "@id" and isinstance(value, str) and not _absolute_or_blank(value):
                yield value
            elif key == "@type":
                for type_ in value if isinstance(value, list) else [value]:
                    if isinstance(type_, str) and not _absolute_or_blank(type_):
                        yield type_
            else:
                yield from _relative_iris(value)


def _merged_values(expanded: Any) -> Iterator[tuple[str, int]]:
    """Each property of expanded JSON-LD with the values RDF conversion will hold for it once every
    node object of the same ``@id`` is merged into one (pyld's node map compares each new value
    with those before it: quadratic in that count, whatever the arrays of the JSON looked like)."""
    held: Counter[tuple[Any, str]] = Counter()
    pending = [expanded]
    while pending:
        value = pending.pop()
        if isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, dict) and "@value" not in value:
            node = value.get("@id", id(value))  # a node without @id is merged with nothing
            for key, item in value.items():
                if key == "@id":
                    continue
                items = item if isinstance(item, list) else [item]
                if key != "@reverse":
                    held[(node, key)] += len(items)
                pending.extend(item.values() if isinstance(item, dict) and key == "@reverse" else items)
    for (_, key), count in held.items():
        yield key, count


def _absolute_or_blank(iri: str) -> bool:
    return iri.startswith("_:") or _pyld._is_absolute_iri(iri)


#: As Digital Bazaar's eddsa-rdfc-2022 does: no base IRI, and @direction as an i18n datatype.
_OPTIONS = {"documentLoader": document_loader, "base": None, "rdfDirection": "i18n-datatype"}


def expand(document: Mapping[str, Any]) -> list[Any]:
    """``document`` as expanded JSON-LD, strictly (contexts from FinVault's shelf only).

    :class:`JsonLdTooLarge` first, past the size bounds (priced before any expansion);
    :class:`UnknownContextError` for a context FinVault does not ship; :class:`JsonLdError` for
    invalid JSON-LD, a property whose term the context does not define, or an ``@id`` or type that
    is not an absolute IRI, each named: nothing in the JSON escapes the dataset that is signed.
    """
    check_size(document)
    dropped: list[str] = []
    processor = _pyld.JsonLdProcessor(on_property_dropped=lambda name: dropped.append(str(name)))
    try:
        expanded: list[Any] = processor.expand(dict(document), _OPTIONS)
    except _pyld.JsonLdError as error:
        ours = _our_error(error)
        if ours is not None:
            raise ours from None
        raise JsonLdError(f"not valid JSON-LD: {_describe(error)}") from None
    if dropped:
        raise JsonLdError(
            "JSON-LD expansion would drop the properties "
            f"{', '.join(map(repr, sorted(set(dropped))))}: the context defines no such term"
        )
    for key, count in _merged_values(expanded):
        if count > MAX_JSONLD_ARRAY:
            raise JsonLdTooLarge(
                f"a JSON-LD property ({key}) of {count:,} values once its node's objects are merged; "
                f"at most {MAX_JSONLD_ARRAY} are expanded"
            )
    relative = sorted(set(_relative_iris(expanded)))
    if relative:
        raise JsonLdError(
            f"JSON-LD expansion would drop {', '.join(map(repr, relative))}: "
            "an @id or type must be an absolute IRI or a term the context defines"
        )
    return expanded


def to_dataset(document: Mapping[str, Any]) -> list[Quad]:
    """The RDF dataset ``document`` denotes (JSON-LD 1.1 to RDF): :func:`expand`'s refusals, and
    :class:`JsonLdError` for expanded JSON-LD that does not convert."""
    expanded = expand(document)
    try:
        dataset = _pyld.JsonLdProcessor().to_rdf(expanded, {**_OPTIONS, "produceGeneralizedRdf": False})
    except _pyld.JsonLdError as error:
        raise JsonLdError(f"the document does not convert to RDF: {_describe(error)}") from None
    return quads_from_pyld(dataset)


def _describe(error: BaseException) -> str:
    """The innermost message of pyld's chain of JsonLdErrors (the outer ones only say where it was)."""
    messages = []
    seen: BaseException | None = error
    while seen is not None:
        messages.append(str(getattr(seen, "message", None) or seen).splitlines()[0])
        seen = seen.__cause__
    return " / ".join(messages)
