"""Selective disclosure for holders: which fields of a receipt can be withheld, and withholding them.

A receipt's credential is a tree addressed by RFC 6901 pointers. A holder may withhold a leaf, an
object (its whole subtree) or a whole array; not one element of an array, since the remaining
indices would shift (withhold fields inside the element instead). Withholding keeps the digest:
each withheld field's hash moves to ``obfuscated`` (:meth:`SaltedDocument.disclose`), so the
smaller receipt verifies as the original did.

Errors name the pointer and say what to do instead; they are :class:`DisclosureError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from chain.core.canonical import DocumentError, SaltedDocument, escape_token, unescape_token


class DisclosureError(DocumentError):
    """A pointer a holder cannot withhold or show: unknown, malformed, or one element of an array."""

    code = "disclosure_invalid"


def parse_pointer(pointer: str) -> list[str]:
    """The reference tokens of an RFC 6901 pointer (``""`` is the whole document)."""
    if pointer and not pointer.startswith("/"):
        raise DisclosureError(
            "a JSON pointer starts with '/' (e.g. /credentialSubject/grade)", pointer=pointer
        )
    tokens = pointer.split("/")[1:]
    for token in tokens:
        if "~" in token.replace("~0", "").replace("~1", ""):
            raise DisclosureError("'~' must be escaped as ~0 (and '/' as ~1)", pointer=pointer)
    return [unescape_token(token) for token in tokens]


def _resolve(credential: Mapping[str, Any], pointer: str) -> tuple[Any, bool]:
    """The node at ``pointer`` and whether it is an element of an array."""
    node: Any = credential
    in_array = False
    for token in parse_pointer(pointer):
        if isinstance(node, dict) and token in node:
            node, in_array = node[token], False
        elif (
            isinstance(node, list) and token.isdigit() and int(token) < len(node) and str(int(token)) == token
        ):
            node, in_array = node[int(token)], True
        else:
            raise DisclosureError("no disclosed field here (unknown, or already withheld)", pointer=pointer)
    return node, in_array


def withholdable(credential: Mapping[str, Any]) -> Iterator[str]:
    """Every pointer a holder may withhold, in document order: objects, arrays and leaves, but not
    array elements themselves (their fields are listed)."""

    def walk(node: Any, pointer: str, element: bool) -> Iterator[str]:
        if pointer and not element:
            yield pointer
        if isinstance(node, dict):
            for key, child in node.items():
                yield from walk(child, f"{pointer}/{escape_token(key)}", False)
        elif isinstance(node, list):
            for index, child in enumerate(node):
                yield from walk(child, f"{pointer}/{index}", True)

    yield from walk(credential, "", False)


def check_withholdable(credential: Mapping[str, Any], pointer: str) -> None:
    """Raises :class:`DisclosureError` unless ``pointer`` names something a holder may withhold."""
    if pointer == "":
        raise DisclosureError("withholding the whole credential leaves nothing to verify", pointer=pointer)
    _, in_array = _resolve(credential, pointer)
    if in_array:
        raise DisclosureError(
            "one element of an array cannot be withheld (the others would shift): withhold the whole "
            "array, or fields inside the element",
            pointer=pointer,
        )


def withhold(document: SaltedDocument, pointers: Iterable[str]) -> SaltedDocument:
    """``document`` without ``pointers`` (checked first: nothing is withheld if one is bad)."""
    pointers = list(dict.fromkeys(pointers))
    if not pointers:
        raise DisclosureError("name at least one field to withhold")
    for pointer in pointers:
        check_withholdable(document.credential, pointer)
    return document.disclose(pointers)


def show_only(document: SaltedDocument, shown: Iterable[str]) -> SaltedDocument:
    """``document`` with everything withheld but ``shown`` (and what lies under it)."""
    shown = list(dict.fromkeys(shown))
    if not shown:
        raise DisclosureError("name at least one field to show")
    for pointer in shown:
        _resolve(document.credential, pointer)

    def covered(pointer: str) -> bool:
        return any(pointer == s or pointer.startswith(s + "/") for s in shown)

    def below(pointer: str) -> bool:
        return any(s.startswith(pointer + "/") for s in shown)

    def targets(node: Any, pointer: str, element: bool) -> Iterator[str]:
        if covered(pointer):
            return
        if not below(pointer):
            if element:
                raise DisclosureError(
                    "showing part of an array would withhold one of its elements: show the whole "
                    "array, or fields inside each element",
                    pointer=pointer,
                )
            yield pointer
            return
        if isinstance(node, dict):
            for key, child in node.items():
                yield from targets(child, f"{pointer}/{escape_token(key)}", False)
        elif isinstance(node, list):
            for index, child in enumerate(node):
                yield from targets(child, f"{pointer}/{index}", True)

    hidden = list(targets(document.credential, "", False))
    return document.disclose(hidden) if hidden else document
