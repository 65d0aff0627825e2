"""The site config (pipeline/config.py): precedence flag > env > file > default, paths relative to
the file, one-line errors naming the key and the expected type, and `config show`."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.config import KEYS, resolve, show
from pipeline.errors import ConfigError, UsageError

SITE = """\
rules = "rules/site.toml"
timezone = "Europe/London"
memory_limit = "2GB"
[paths]
extracts = "extracts"
out = "/srv/worklists"
database = "data/screening.duckdb"
[alerts]
urls = ["json://127.0.0.1:9/hook", "mailto://user:secret@example.org"]
on_urgent = false
"""


def _config(tmp_path: Path, text: str = SITE) -> Path:
    path = tmp_path / "site" / "b12screen.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_flags_beat_variables_beat_the_file_beat_the_defaults(tmp_path: Path) -> None:
    config = _config(tmp_path)
    settings = resolve(
        {"out": "/flag/out", "db": None},
        config=config,
        env={"B12SCREEN_OUT": "/env/out", "B12SCREEN_DB": "/env/db.duckdb"},
    )
    assert settings["out"] == Path("/flag/out")
    assert settings.values["out"].describe() == "flag --out"
    assert settings["db"] == Path("/env/db.duckdb")  # the flag was not given
    assert settings.values["db"].describe() == "env B12SCREEN_DB"
    site = config.parent
    assert settings["extracts"] == site / "extracts"  # relative to the file, not the cwd
    assert settings.values["extracts"].source == "config file"
    assert settings["rules"] == str(site / "rules" / "site.toml")
    assert settings["memory_limit"] == "2GB" and settings["timezone"] == "Europe/London"
    assert settings["alerts.on_urgent"] is False and settings["alerts.on_failure"] is True
    assert settings.values["alerts.on_failure"].source == "default"
    assert settings["schedule.nightly"] == "02:30"


def test_the_file_comes_from_the_flag_then_the_variable_then_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    (tmp_path / "x").mkdir()
    other = _config(tmp_path / "x", 'timezone = "Asia/Tokyo"\n')
    assert resolve(env={"B12SCREEN_CONFIG": str(other)})["timezone"] == "Asia/Tokyo"
    assert resolve(config=config, env={"B12SCREEN_CONFIG": str(other)})["timezone"] == (
        "Europe/London"
    )
    monkeypatch.chdir(config.parent)
    found = resolve(env={})
    assert found.config_source == "current folder" and found["timezone"] == "Europe/London"
    monkeypatch.chdir(tmp_path)
    none = resolve(env={})
    assert none.config_file is None and none["db"] == Path("b12screen.duckdb")
    assert none.values["db"].source == "default"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[paths]\nout = 3\n", "paths.out: expected text in quotes, got a whole number"),
        ('[alerts]\non_failure = "yes"\n', "alerts.on_failure: expected true or false, got text"),
        ('[alerts]\nurls = "json://x"\n', "alerts.urls: expected a list, got text"),
        ('[path]\nout = "x"\n', "path: unknown key"),
        ('timezone = "Mars/Olympus"\n', "timezone: unknown time zone 'Mars/Olympus'"),
        ('memory_limit = "lots"\n', "memory_limit: not a memory size"),
        ('[schedule]\nnightly = "25:00"\n', "schedule.nightly: must be a time of day as HH:MM"),
        ("[paths\n", "is not valid TOML"),
    ],
)
def test_a_bad_config_is_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(config=_config(tmp_path, text), env={})
    assert message in str(info.value)
    assert "\n" not in str(info.value) and "Input should" not in str(info.value)


def test_a_missing_config_file_and_a_missing_folder_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        resolve(config=tmp_path / "nope.toml", env={})
    settings = resolve(config=_config(tmp_path, ""), env={})
    with pytest.raises(UsageError, match="give --extracts, B12SCREEN_EXTRACTS or paths.extracts"):
        settings.require("extracts", "extracts folder")


def test_the_default_as_of_date_is_today_in_the_site_time_zone(tmp_path: Path) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    settings = resolve(config=_config(tmp_path, 'timezone = "Pacific/Kiritimati"\n'), env={})
    assert settings.today() == datetime.now(ZoneInfo("Pacific/Kiritimati")).date()


def test_config_show_names_every_setting_and_its_source_and_hides_alert_secrets(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    result = CliRunner(env={"B12SCREEN_DB": "/env/db.duckdb"}).invoke(
        cli, ["--config", str(config), "config", "show"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"config file: {config}")
    by_key = {line.split()[0]: line for line in lines[1:]}
    assert set(by_key) == {k.name for k in KEYS}
    assert by_key["db"].endswith("[env B12SCREEN_DB]")
    assert by_key["out"].endswith(f"[config file {config}: paths.out]")
    assert by_key["log_file"].endswith("[default]")
    assert "secret" not in result.output and "json://…, mailto://…" in by_key["alerts.urls"]
    plain = show(resolve(config=config, env={}))  # the CLI prints exactly what show() makes
    assert [line for line in plain if not line.startswith("db ")] == [
        line for line in lines if not line.startswith("db ")
    ]


def test_the_cli_run_takes_its_settings_from_the_config(
    tmp_path: Path, small_extracts: Path
) -> None:
    config = _config(
        tmp_path,
        f'[paths]\nextracts = "{small_extracts}"\nout = "out"\ndatabase = "db.duckdb"\n',
    )
    result = CliRunner().invoke(cli, ["--config", str(config), "run", "--as-of", "2026-11-24"])
    assert result.exit_code == 0, result.output
    site = config.parent
    record = json.loads((site / "out" / "run.json").read_text(encoding="utf-8"))
    assert record["as_of"] == "2026-11-24"
    assert (site / "db.duckdb").is_file()
    # a flag still wins over the file (and --config may follow the command too)
    result = CliRunner().invoke(
        cli,
        ["run", "--config", str(config), "--as-of", "2026-11-25", "--out", str(tmp_path / "o2")],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o2" / "worklist.csv").is_file()
    assert json.loads((site / "out" / "run.json").read_text())["as_of"] == str(date(2026, 11, 24))


def test_the_cli_run_reads_b12screen_variables(tmp_path: Path, small_extracts: Path) -> None:
    """The issue: the CLI ignored B12SCREEN_*; now they stand between the flags and the file."""
    env = {
        "B12SCREEN_EXTRACTS": str(small_extracts),
        "B12SCREEN_OUT": str(tmp_path / "out"),
        "B12SCREEN_DB": str(tmp_path / "db.duckdb"),
        "B12SCREEN_CONFIG": "",
    }
    result = CliRunner(env=env).invoke(cli, ["run", "--as-of", "2026-11-24"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "worklist.csv").is_file() and (tmp_path / "db.duckdb").is_file()


def test_alert_urls_may_come_from_the_environment_to_keep_passwords_out_of_the_file(
    tmp_path: Path,
) -> None:
    env = {"B12SCREEN_ALERT_URLS": "mailto://u:pw@example.org  json://127.0.0.1:9/x"}
    settings = resolve(config=_config(tmp_path), env=env)
    assert settings["alerts.urls"] == ("mailto://u:pw@example.org", "json://127.0.0.1:9/x")
    assert settings.values["alerts.urls"].describe() == "env B12SCREEN_ALERT_URLS"
    assert "pw" not in "\n".join(show(settings))


def test_without_a_time_zone_the_default_as_of_is_the_machines_date(tmp_path: Path) -> None:
    settings = resolve(config=_config(tmp_path, ""), env={})
    assert settings["timezone"] is None and settings.today() == date.today()
