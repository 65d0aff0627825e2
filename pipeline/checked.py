"""Pydantic validation errors as one line naming the key and the expected type.

Shared by the rules file (pipeline/rules.py) and the site config (pipeline/config.py). A value
that may be one of several types (a rules value is a number, a switch or a list) gives one
pydantic error per type; they are folded into one: ``criteria.b12_deficient.params.below_pg_ml.
value: expected a number, true or false, or a list, got text``. The offending value itself is
never repeated (a config value may be a password in an alert URL).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

# pydantic names the member of a union it tried as a segment of the error's location
_UNION_MEMBER = re.compile(r"^(bool|int|float|str|list\[[^\]]*\]|dict\[[^\]]*\]|[A-Z]\w*)$")

_EXPECTED_BY_MEMBER = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "str": "text in quotes",
    "list[str]": "a list of text",
    "list[int]": "a list of whole numbers",
}
_EXPECTED_BY_TYPE = {
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "text in quotes",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def describe(value: Any) -> str:
    """What a TOML value is, in words (never the value itself)."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _split(loc: tuple) -> tuple[tuple, str | None]:
    """The key's location, and the union member pydantic tried (if any)."""
    for i, part in enumerate(loc):
        if isinstance(part, str) and i > 0 and _UNION_MEMBER.match(part):
            return loc[:i], part
    return loc, None


def _key(loc: tuple) -> str:
    return ".".join(str(x) for x in loc) or "(top level)"


def _problem(errors: list[dict]) -> str:
    first = errors[0]
    kind = first["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "missing value"
    members = [m for _, m in (_split(tuple(e["loc"])) for e in errors) if m]
    expected = list(
        dict.fromkeys(
            _EXPECTED_BY_MEMBER.get(m, m) for m in members
        )  # one per member, in the union's order
        if members
        else dict.fromkeys(_EXPECTED_BY_TYPE.get(e["type"], "") for e in errors)
    )
    expected = [e for e in expected if e]
    if "a number" in expected and "a whole number" in expected:
        expected.remove("a whole number")
    lists = [e for e in expected if e.startswith("a list")]
    if len(lists) > 1:
        expected = [e for e in expected if e not in lists[1:]]
        expected[expected.index(lists[0])] = "a list"
    if not expected:  # a validator's own message ("must be a positive number of days")
        msg = str(first["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return msg.replace("Input should be", "expected")
    words = expected[0] if len(expected) == 1 else ", ".join(expected[:-1]) + " or " + expected[-1]
    shortest = min(errors, key=lambda e: len(e["loc"]))
    return f"expected {words}, got {describe(shortest.get('input'))}"


def one_line(exc: ValidationError) -> str:
    """``key: problem`` for the first key at fault, and how many other keys are."""
    groups: dict[tuple, list[dict]] = {}
    for error in exc.errors():
        base, _ = _split(tuple(error["loc"]))
        groups.setdefault(base, []).append(error)
    (loc, errors), *rest = groups.items()
    more = f" (and {len(rest)} more key{'s' if len(rest) > 1 else ''})" if rest else ""
    return f"{_key(loc)}: {_problem(errors)}{more}"
