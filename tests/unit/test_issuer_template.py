"""Credential templates: text and typed placeholders, optional members, errors at load time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from issuer.errors import TemplateError
from issuer.template import RowError, Template, load_template

ROW = {
    "id": "c-1",
    "name": "Ada Lovelace",
    "credits": "120",
    "gpa": "3.75",
    "honours": "Yes",
    "graduated": "2026-06-30",
    "issued": "2026-07-01T09:30:00+02:00",
}


def fill(template: Any, **row: Any) -> Any:
    return Template(template).fill({**ROW, **row})


def test_text_placeholders_whole_and_embedded() -> None:
    template = {
        "id": "urn:cert:{{id}}",
        "subject": {"name": "{{ name }}", "tags": ["{{id}}-{{name}}", "fixed"]},
    }
    assert fill(template) == {
        "id": "urn:cert:c-1",
        "subject": {"name": "Ada Lovelace", "tags": ["c-1-Ada Lovelace", "fixed"]},
    }
    assert fill({"n": "{{credits}}"}, credits=120) == {"n": "120"}  # JSON input: number as its text


@pytest.mark.parametrize(
    ("placeholder", "value", "expected"),
    [
        ("$int", "120", 120),
        ("$int", " -7 ", -7),
        ("$int", 42, 42),
        ("$number", "3.75", 3.75),
        ("$number", "1e3", 1000.0),
        ("$number", "12", 12),
        ("$bool", "Yes", True),
        ("$bool", "0", False),
        ("$bool", False, False),
        ("$str", "plain", "plain"),
        ("$date", "2026-06-30", "2026-06-30"),
        ("$datetime", "2026-07-01T09:30:00+02:00", "2026-07-01T07:30:00Z"),
        ("$datetime", "2026-07-01T00:00:00Z", "2026-07-01T00:00:00Z"),
        ("$datetime", "2026-07-01", "2026-07-01T00:00:00Z"),
        ("$datetime", "2026-07-01T00:00:00.250Z", "2026-07-01T00:00:00.250000Z"),
    ],
)
def test_typed_placeholders(placeholder: str, value: Any, expected: Any) -> None:
    result = fill({"v": {placeholder: "x"}}, x=value)["v"]
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("placeholder", "value", "message"),
    [
        ("$int", "12.5", "'12.5' is not an integer"),
        ("$int", True, "is not an integer"),
        ("$number", "nan", "'nan' is not a finite number"),
        ("$number", "1e999", "is not a finite number"),
        ("$bool", "maybe", "is not a boolean"),
        ("$date", "2026-02-30", "'2026-02-30' is not an ISO 8601 date"),
        ("$datetime", "yesterday", "is not an ISO 8601 date-time"),
        ("$datetime", "2026-07-01T10:00:00", "has no UTC offset"),
        ("$str", {"a": 1}, "holds a JSON dict, not text"),
    ],
)
def test_bad_values_name_the_column(placeholder: str, value: Any, message: str) -> None:
    with pytest.raises(RowError) as caught:
        fill({"v": {placeholder: "x"}}, x=value)
    [reason] = caught.value.reasons
    assert reason.startswith("column 'x'")
    assert message in reason


def test_long_bad_values_are_shortened() -> None:
    with pytest.raises(RowError) as caught:
        fill({"v": {"$int": "x"}}, x="9" * 30 + "x" * 100)
    assert len(caught.value.message) < 100


def test_every_problem_of_a_row_is_reported() -> None:
    template = {"a": "{{missing}}", "b": {"$date": "graduated"}, "c": {"$int": "name"}, "d": "{{blank}}"}
    with pytest.raises(RowError) as caught:
        fill(template, graduated="soon", blank="  ")
    assert caught.value.reasons == (
        "missing column 'missing'",
        "column 'graduated': 'soon' is not an ISO 8601 date (YYYY-MM-DD)",
        "column 'name': 'Ada Lovelace' is not an integer",
        "missing column 'blank'",
    )


def test_optional_members_disappear_when_empty() -> None:
    template = {"validUntil": {"$datetime": "expires", "optional": True}, "n": "{{name}}"}
    assert fill(template) == {"n": "Ada Lovelace"}
    assert fill(template, expires="") == {"n": "Ada Lovelace"}
    assert fill(template, expires=None) == {"n": "Ada Lovelace"}
    assert fill(template, expires="2030-01-01") == {"validUntil": "2030-01-01T00:00:00Z", "n": "Ada Lovelace"}
    with pytest.raises(RowError, match="has no UTC offset"):
        fill(template, expires="2030-01-01T10:00")  # optional, but present values still must be valid


def test_columns_and_required_columns() -> None:
    template = Template(
        {"a": "{{x}} and {{y}}", "b": [{"$int": "z"}], "c": {"$date": "w", "optional": True}, "d": 1}
    )
    assert template.columns == {"x", "y", "z", "w"}
    assert template.required_columns == {"x", "y", "z"}


def test_literals_pass_through_unchanged() -> None:
    template: dict[str, Any] = {"n": None, "t": True, "f": 1.5, "e": [], "o": {}, "s": "no placeholder"}
    assert fill(template) == template


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "must be a JSON object"),
        ({"a": {"$integer": "x"}}, "unknown placeholder ['$integer']"),
        ({"a": {"$int": "x", "$str": "y"}}, "unknown placeholder"),
        ({"a": {"$int": ""}}, "$int needs a column name"),
        ({"a": {"$int": 3}}, "$int needs a column name"),
        ({"a": {"$int": "x", "default": 0}}, "takes only 'optional'"),
        ({"a": {"$int": "x", "optional": "yes"}}, "'optional' must be true or false"),
        ({"a": [{"$int": "x", "optional": True}]}, "only object members can be optional"),
        ({"{{x}}": 1}, "placeholders are not allowed in keys"),
        ({"a": {"b": "{{two words}}"}}, "/a/b: malformed placeholder"),
        ({"a": "{{x}"}, "malformed placeholder"),
    ],
)
def test_template_errors_are_found_at_load_time(document: Any, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        Template(document)
    assert message in caught.value.message
    assert caught.value.code == "template_invalid"


def test_load_template_is_strict_json(tmp_path: Path) -> None:
    path = tmp_path / "template.json"
    path.write_text('{"a": "{{x}}", "a": 1}')
    with pytest.raises(TemplateError, match="duplicate key 'a'"):
        load_template(path)
    path.write_text('{"a": NaN}')
    with pytest.raises(TemplateError, match="NaN is not valid JSON"):
        load_template(path)
    with pytest.raises(TemplateError, match="cannot read template"):
        load_template(tmp_path / "absent.json")
    path.write_text('{"a": "{{x}}"}')
    assert load_template(path).required_columns == {"x"}
