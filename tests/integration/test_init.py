"""`b12screen init DIR`: a site's config, rules profile and Prefect deployments, made from the
config; the site's own files are kept when init runs again."""

from __future__ import annotations

import inspect
from pathlib import Path

import yaml
from click.testing import CliRunner

from flows.monthly import monthly_audit
from flows.nightly import nightly_screening
from pipeline.cli import cli
from pipeline.config import resolve
from pipeline.errors import UsageError
from pipeline.rules import load_rules


def _init(*args: str):
    return CliRunner().invoke(cli, ["init", *args])


def test_init_scaffolds_a_site_that_runs(tmp_path: Path, small_extracts: Path) -> None:
    site = tmp_path / "Our Site"
    result = _init(str(site), "--timezone", "Europe/London")
    assert result.exit_code == 0, result.output
    for name in ("b12screen.toml", "rules/site.toml", "prefect.yaml"):
        assert (site / name).is_file(), name
    assert (site / "extracts").is_dir()

    rules = load_rules(site / "rules" / "site.toml")  # extends guidance, overrides the name
    guidance = load_rules("guidance")
    assert rules.version == "our-site@2026.12.1"
    assert rules.variables() == guidance.variables()
    # the template's identifiers example, uncommented, is a valid profile
    text = (site / "rules" / "site.toml").read_text(encoding="utf-8")
    text = text.replace("# [identifiers]\n# columns", "[identifiers]\ncolumns")
    (site / "rules" / "own-ids.toml").write_text(text, encoding="utf-8")
    own = load_rules(site / "rules" / "own-ids.toml").spec.identifiers
    assert own.keys == ("mrn", "name", "responsible clinician")

    settings = resolve(config=site / "b12screen.toml", env={})
    assert settings["extracts"] == site.resolve() / "extracts"
    assert settings["rules"] == str(site.resolve() / "rules" / "site.toml")
    assert settings["timezone"] == "Europe/London"

    deployments = {
        d["name"]: d
        for d in yaml.safe_load((site / "prefect.yaml").read_text(encoding="utf-8"))["deployments"]
    }
    nightly, monthly = deployments["nightly-screening"], deployments["monthly-audit"]
    config = str(site.resolve() / "b12screen.toml")
    assert nightly["parameters"] == {"config": config} == monthly["parameters"]
    assert nightly["schedules"] == [{"cron": "30 2 * * *", "timezone": "Europe/London"}]
    assert monthly["schedules"] == [{"cron": "0 6 1 * *", "timezone": "Europe/London"}]
    assert nightly["entrypoint"] == "flows.nightly.nightly_screening"
    assert monthly["entrypoint"] == "flows.monthly.monthly_audit"
    for flow in (nightly_screening, monthly_audit):
        assert "config" in inspect.signature(flow.fn).parameters
    assert "next:" in result.output and "deploy --all --prefect-file" in result.output

    for path in small_extracts.iterdir():  # the printed hand run works on the site
        (site / "extracts" / path.name).write_bytes(path.read_bytes())
    run = CliRunner().invoke(
        cli, ["--config", str(site / "b12screen.toml"), "run", "--as-of", "2026-11-24"]
    )
    assert run.exit_code == 0, run.output
    assert (site / "worklists" / "worklist.csv").is_file()
    assert (site / "screening.duckdb").is_file()


def test_init_again_keeps_the_config_and_rules_and_remakes_prefect_yaml(tmp_path: Path) -> None:
    site = tmp_path / "site"
    assert _init(str(site)).exit_code == 0
    config = site / "b12screen.toml"
    edited = (
        config.read_text(encoding="utf-8")
        .replace('timezone = "UTC"', 'timezone = "America/New_York"')
        .replace('nightly = "02:30"', 'nightly = "01:15"')
    )
    config.write_text(edited, encoding="utf-8")
    rules = site / "rules" / "site.toml"
    rules.write_text(rules.read_text(encoding="utf-8") + "\n# ours\n", encoding="utf-8")

    result = _init(str(site))
    assert result.exit_code == 0, result.output
    assert f"kept  {config}" in result.output and f"kept  {rules}" in result.output
    assert config.read_text(encoding="utf-8") == edited
    assert rules.read_text(encoding="utf-8").endswith("# ours\n")
    nightly = yaml.safe_load((site / "prefect.yaml").read_text())["deployments"][0]
    assert nightly["schedules"] == [{"cron": "15 1 * * *", "timezone": "America/New_York"}]


def test_init_refuses_a_bad_time_zone_in_one_line(tmp_path: Path) -> None:
    result = _init(str(tmp_path / "site"), "--timezone", "Europe/Lundon")
    assert result.exit_code == UsageError.exit_code
    assert result.stderr.strip().splitlines() == [
        "b12screen: error: --timezone: unknown time zone 'Europe/Lundon' "
        "(an IANA name such as Europe/London or UTC)"
    ]
    assert not (tmp_path / "site").exists()


def test_the_templates_commented_mappings_and_identifiers_load_when_uncommented(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    assert _init(str(site)).exit_code == 0
    rules = site / "rules" / "site.toml"
    lines = rules.read_text(encoding="utf-8").splitlines()
    # uncomment the [mappings] table with its lab_test_names line, and [identifiers]
    keep = {"[mappings]", 'lab_test_names = "mappings/lab_test_names.csv"', "[identifiers]"}
    keep |= {'columns = ["mrn", "name", "responsible clinician"]', 'sources = { mrn = "MR" }'}
    text = "\n".join(line[2:] if line[2:] in keep else line for line in lines) + "\n"
    rules.write_text(text, encoding="utf-8")
    # the mapping file as the template's commented example rows show it
    at = lines.index('# lab_test_names = "mappings/lab_test_names.csv"')
    example = [line.removeprefix("#   ") for line in lines[at + 1 : at + 3]]
    (site / "rules" / "mappings").mkdir()
    (site / "rules" / "mappings" / "lab_test_names.csv").write_text(
        "\n".join(example) + "\n", encoding="utf-8"
    )
    loaded = load_rules(rules)
    assert [(m.table, len(m.rows)) for m in loaded.mappings] == [("lab_test_names", 1)]
    assert loaded.spec.identifiers.sources_by_key()["mrn"] == "mr"
