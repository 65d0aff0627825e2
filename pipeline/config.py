"""The site config (``b12screen.toml``) and where each setting of a run comes from.

One file holds what a site sets once: the folders, the rules profile, the time zone, the
schedule, the memory limit and the alerts. The CLI and the Prefect flows both read it, through
:func:`resolve`, which gives every setting with its source. Precedence, highest first:

1. a flag (CLI) or a flow parameter that is given (not None);
2. an environment variable ``B12SCREEN_<NAME>`` (as a worker or a cron job sets them);
3. the config file: ``--config PATH`` / the flow's ``config`` parameter, else
   ``B12SCREEN_CONFIG``, else ``./b12screen.toml`` when the current folder has one;
4. the built-in default.

Relative paths in the config file are relative to the file's own folder (so a site folder can
move); relative paths in flags and variables are relative to the current folder, as usual.
Plain Python: no Prefect here.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from pipeline import checked
from pipeline.errors import ConfigError, UsageError
from pipeline.sqltext import memory_setting

CONFIG_NAME = "b12screen.toml"
CONFIG_ENV = "B12SCREEN_CONFIG"
DEFAULT_MEMORY_LIMIT = "3GB"
DEFAULT_DB = "b12screen.duckdb"

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


# -- the file ----------------------------------------------------------------------------------
def hh_mm(value: str) -> str:
    try:
        parsed = datetime.strptime(value, "%H:%M")
    except ValueError:
        raise ValueError("must be a time of day as HH:MM (24-hour), e.g. 02:30") from None
    return parsed.strftime("%H:%M")


class PathsSection(BaseModel):
    model_config = _STRICT
    extracts: str | None = None
    out: str | None = None
    database: str | None = None
    audit: str | None = None
    log_file: str | None = None


class ScheduleSection(BaseModel):
    model_config = _STRICT
    nightly: str = "02:30"
    monthly: str = "06:00"
    monthly_day: int = 1

    @field_validator("nightly", "monthly")
    @classmethod
    def _time(cls, v: str) -> str:
        return hh_mm(v)

    @field_validator("monthly_day")
    @classmethod
    def _day(cls, v: int) -> int:
        if not 1 <= v <= 28:
            raise ValueError("must be a day of the month from 1 to 28")
        return v


class AlertsSection(BaseModel):
    model_config = _STRICT
    urls: list[str] = []
    on_failure: bool = True
    on_urgent: bool = True


class SiteFile(BaseModel):
    """``b12screen.toml``, as written by ``b12screen init`` (every key optional)."""

    model_config = _STRICT
    rules: str | None = None
    timezone: str = "UTC"
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    paths: PathsSection = PathsSection()
    schedule: ScheduleSection = ScheduleSection()
    alerts: AlertsSection = AlertsSection()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        return check_timezone(v)

    @field_validator("memory_limit")
    @classmethod
    def _memory(cls, v: str) -> str:
        return memory_setting(v)


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name such as Europe/London or UTC)"
        ) from None
    return name


def read_site_file(path: Path) -> SiteFile:
    """The config file, checked; a ConfigError in one line naming the key otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read ({type(exc).__name__})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path.name} is not valid TOML: {exc}") from None
    try:
        return SiteFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"config file {path.name}: {checked.one_line(exc)}") from None


# -- the settings of a run ---------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    name: str  # as `config show` prints it, and the flow parameter / flag it overrides
    flag: str | None  # the CLI option
    env: str | None  # B12SCREEN_...
    file: tuple[str, ...]  # where it sits in b12screen.toml
    kind: str  # path, text, rules, zone, memory, time, day, switch, urls


KEYS: tuple[Key, ...] = (
    Key("extracts", "--extracts", "B12SCREEN_EXTRACTS", ("paths", "extracts"), "path"),
    Key("out", "--out", "B12SCREEN_OUT", ("paths", "out"), "path"),
    Key("db", "--db", "B12SCREEN_DB", ("paths", "database"), "path"),
    Key("audit", None, "B12SCREEN_AUDIT", ("paths", "audit"), "path"),
    Key("log_file", "--log-file", "B12SCREEN_LOG_FILE", ("paths", "log_file"), "path"),
    Key("rules", "--rules", "B12SCREEN_RULES", ("rules",), "rules"),
    Key("timezone", None, "B12SCREEN_TIMEZONE", ("timezone",), "zone"),
    Key("memory_limit", "--memory-limit", "B12SCREEN_MEMORY_LIMIT", ("memory_limit",), "memory"),
    Key("schedule.nightly", None, None, ("schedule", "nightly"), "time"),
    Key("schedule.monthly", None, None, ("schedule", "monthly"), "time"),
    Key("schedule.monthly_day", None, None, ("schedule", "monthly_day"), "day"),
    Key("alerts.urls", None, "B12SCREEN_ALERT_URLS", ("alerts", "urls"), "urls"),
    Key("alerts.on_failure", None, None, ("alerts", "on_failure"), "switch"),
    Key("alerts.on_urgent", None, None, ("alerts", "on_urgent"), "switch"),
)
_BY_NAME = {k.name: k for k in KEYS}

DEFAULTS: dict[str, Any] = {
    "db": Path(DEFAULT_DB),
    "rules": "guidance",
    "timezone": None,  # not set: the machine's local date, as before there was a config
    "memory_limit": DEFAULT_MEMORY_LIMIT,
    "schedule.nightly": "02:30",
    "schedule.monthly": "06:00",
    "schedule.monthly_day": 1,
    "alerts.urls": (),
    "alerts.on_failure": True,
    "alerts.on_urgent": True,
}


@dataclass(frozen=True)
class Setting:
    value: Any
    source: str  # "flag", "parameter", "env", "config file", "default"
    where: str = ""  # "--out", "B12SCREEN_OUT", "/site/b12screen.toml: paths.out"

    def describe(self) -> str:
        return f"{self.source} {self.where}".strip()


@dataclass(frozen=True)
class Settings:
    """Every setting of a run with where it came from (``b12screen config show``)."""

    config_file: Path | None
    config_source: str  # "--config", "B12SCREEN_CONFIG", "current folder", "none"
    values: Mapping[str, Setting]

    def __getitem__(self, name: str) -> Any:
        return self.values[name].value

    def require(self, name: str, what: str) -> Any:
        """The value, or a usage error saying every way to give it."""
        value = self[name]
        if value is None:
            key = _BY_NAME[name]
            ways = [w for w in (key.flag, key.env) if w]
            ways.append(f"{'.'.join(key.file)} in {CONFIG_NAME}")
            raise UsageError(f"no {what}: give {', '.join(ways[:-1])} or {ways[-1]}")
        return value

    def today(self) -> date:
        """The date now in the site's time zone (else the machine's): the default as-of date."""
        zone = self["timezone"]
        return datetime.now(ZoneInfo(zone)).date() if zone else date.today()


def _config_location(
    config: str | Path | None, env: Mapping[str, str], given_by: str
) -> tuple[Path | None, str]:
    if config is not None and str(config) != "":
        return Path(config), "--config" if given_by == "flag" else "parameter config"
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]), CONFIG_ENV
    here = Path(CONFIG_NAME)
    if here.is_file():
        return here.resolve(), "current folder"
    return None, "none"


def _from_text(key: Key, text: str, base: Path | None) -> Any:
    """A value given as text (a flag or a variable), converted and checked."""
    if key.kind == "path":
        path = Path(text).expanduser()
        return base / path if base is not None and not path.is_absolute() else path
    if key.kind == "rules":
        if base is not None and (text.endswith(".toml") or "/" in text):
            path = Path(text).expanduser()
            return str(path if path.is_absolute() else base / path)
        return text
    if key.kind == "zone":
        return check_timezone(text)
    if key.kind == "memory":
        return memory_setting(text)
    if key.kind == "urls":
        return tuple(u for u in text.split() if u)
    return text


def resolve(
    given: Mapping[str, Any] | None = None,
    *,
    config: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    given_by: str = "flag",
) -> Settings:
    """Every setting of a run: ``given`` (flags or flow parameters; None = not given), then the
    environment, then the config file, then the defaults."""
    given = dict(given or {})
    env = os.environ if env is None else env
    path, config_source = _config_location(config, env, given_by)
    site = read_site_file(path) if path is not None else None
    base = path.resolve().parent if path is not None else None
    values: dict[str, Setting] = {}
    for key in KEYS:
        values[key.name] = _one(key, given, env, site, path, base, given_by)
    return Settings(path.resolve() if path else None, config_source, values)


def _one(
    key: Key,
    given: Mapping[str, Any],
    env: Mapping[str, str],
    site: SiteFile | None,
    path: Path | None,
    base: Path | None,
    given_by: str,
) -> Setting:
    value = given.get(key.name)
    if value is not None:
        where = (key.flag or key.name) if given_by == "flag" else key.name
        if isinstance(value, str | Path) and key.kind != "urls":
            try:
                value = _from_text(key, str(value), None)
            except ValueError as exc:
                raise UsageError(f"{where}: {exc}") from None
        elif key.kind == "urls":
            value = tuple(value)
        return Setting(value, given_by, where)
    if key.env and env.get(key.env):
        try:
            return Setting(_from_text(key, env[key.env], None), "env", key.env)
        except ValueError as exc:
            raise UsageError(f"{key.env}: {exc}") from None
    if site is not None:
        section: Any = site
        for part in key.file:
            section = getattr(section, part)
        fields_set = _explicit(site, key.file)
        if fields_set and section is not None:
            if key.kind in ("path", "rules"):
                section = _from_text(key, section, base)
            elif key.kind == "urls":
                section = tuple(section)
            return Setting(section, "config file", f"{path}: {'.'.join(key.file)}")
    return Setting(DEFAULTS.get(key.name), "default")


def _explicit(site: SiteFile, file: tuple[str, ...]) -> bool:
    """True when the file itself sets this key (not pydantic's default)."""
    model: BaseModel = site
    for part in file[:-1]:
        if part not in model.model_fields_set:
            return False
        model = getattr(model, part)
    return file[-1] in model.model_fields_set


def show(settings: Settings) -> list[str]:
    """``b12screen config show``: one line per setting, with its value and source.

    Alert URLs may hold a password or a token: only their scheme is shown.
    """
    lines = [
        f"config file: {settings.config_file or '(none)'}  ({settings.config_source})",
    ]
    width = max(len(k.name) for k in KEYS)
    for key in KEYS:
        setting = settings.values[key.name]
        value = setting.value
        if key.kind == "urls":
            shown = ", ".join(u.split("://", 1)[0] + "://…" for u in value) or "(none)"
        elif value is None and key.name == "timezone":
            shown = "(not set: the machine's local time; schedules in UTC)"
        elif value is None:
            shown = "(not set)"
        elif isinstance(value, bool):
            shown = str(value).lower()
        else:
            shown = str(value)
        lines.append(f"{key.name.ljust(width)}  {shown}  [{setting.describe()}]")
    return lines
