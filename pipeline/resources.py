"""Where the project's SQL, reference data and rules live, in a source tree or an installed wheel."""

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def _root(name: str) -> Path:
    installed = _PACKAGE / "_assets" / name
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / name


def sql_dir() -> Path:
    return _root("sql")


def data_dir() -> Path:
    return _root("data")


def rules_dir() -> Path:
    return data_dir() / "rules"


def default_rules_path() -> Path:
    return rules_dir() / "guidance.toml"


def read_sql(relative: str) -> str:
    return (sql_dir() / relative).read_text(encoding="utf-8")
