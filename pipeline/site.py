"""``b12screen init DIR``: scaffold a site folder.

    DIR/b12screen.toml     the site config (pipeline/config.py): folders, rules, time zone,
                           schedule, memory limit, alerts
    DIR/rules/site.toml    the site's rules profile: extends "guidance", overrides what differs
    DIR/extracts/          where the EHR drops the extracts (the config's paths.extracts)
    DIR/prefect.yaml       the Prefect deployments, made from the config's schedule and time
                           zone; their one parameter is the config file, read at every run

The config and the rules are never overwritten (they are the site's own); ``prefect.yaml`` is
made again from the config each time, so ``init`` again after changing the schedule or the time
zone, then deploy again. The mapping files (data/lab_test_names.csv, ...) are not copied: a
site names its own, which extend and override them, under ``[mappings]`` of its profile
(pipeline/mappings.py); the template shows how, commented out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import CONFIG_NAME, SiteFile, check_timezone, read_site_file
from pipeline.errors import UsageError

RULES_NAME = "rules/site.toml"
WORK_POOL = "b12screen"

CONFIG_TEMPLATE = """\
# b12screen site config. `b12screen --config {config} config show` prints what a run uses
# and where each value comes from. Precedence: a flag (or a flow parameter) > a B12SCREEN_*
# variable > this file > the default. Relative paths are relative to this file's folder.

# The rules profile: a file (relative to this folder) or a shipped profile (guidance,
# primary-sources). rules/site.toml extends guidance; edit it, not the shipped profiles.
rules = "{rules}"

# The site's time zone (IANA name): the schedule below runs in it, and the default as-of date
# of a run is today there.
timezone = "{timezone}"

# DuckDB's memory ceiling; beyond it DuckDB spills to <database>.spill/ beside the database.
memory_limit = "3GB"

[paths]
extracts = "extracts"        # the folder the EHR drops tonight's extract files in
out = "worklists"            # published outputs: worklist.csv, audit.html, runs/<run id>/, ...
database = "screening.duckdb"  # ingested data and the run registry (keep it; back it up)
audit = "audit"              # the monthly reports (audit-YYYY-MM.html, report-YYYY-MM/)
# log_file = "b12screen.log"   # the CLI appends stage counts and timings here (as --log-file)

[schedule]                   # used by prefect.yaml: run `b12screen init` again after a change
nightly = "{nightly}"            # HH:MM, every night
monthly = "06:00"            # HH:MM, on monthly_day of each month (the previous month's report)
monthly_day = 1

[alerts]
# Apprise URLs (https://github.com/caronc/apprise/wiki), e.g.
#   "mailto://user:password@smtp.example.org?to=screening-team@example.org"
#   "json://127.0.0.1:8080/b12screen"   (a JSON POST to a webhook)
# Alerts hold counts, the run id and the output folder only, never a patient id or value.
# A URL with a password may rather go in B12SCREEN_ALERT_URLS (space-separated) than here.
urls = []
on_failure = true            # a run failed: its cause (one line) and where its log is
on_urgent = true             # a run has patients at the most urgent priority: how many
"""

RULES_TEMPLATE = """\
# The site's rules profile. It extends the shipped "guidance" profile
# (data/rules/guidance.toml, listed with sources by `b12screen catalogue`) and overrides only
# what differs here: a table below replaces the same table of the base, key by key. Keep a
# source for every value you change: the audit report prints it.
#
# An unknown key, a missing value or a wrong type stops the run before any data is read, with
# one line naming the key. run.json records this profile's name, version and SHA-256.
extends = "guidance"

[ruleset]
name = "{name}"              # your site's profile name (shown in every output)
version = "2026.12.1"        # change it with every edit: outputs record which rules made them

# Compare with the reporting lab's own range where the extract has reference_low/high:
# [settings.use_lab_reference_range]
# value = true
# unit = "switch"
# source = "our laboratory committee, Dec 2026"

# A threshold (here the B12 deficiency cut-off; the unit stays the canonical one):
# [criteria.b12_deficient.params.below_pg_ml]
# value = 200
# unit = "pg/mL"
# source = "our laboratory: local assay, reference interval 200-900 pg/mL"

# A look-back window:
# [analytes.b12]
# lookback_days = 730
# source = "local policy: B12 tested every two years at most"

# Your own identifier columns of the patients extract, copied to the clinician worklists
# (worklist.csv, worklist_<list>.csv, worklist.xlsx) right after patient_id, and to nothing
# else (not flags.parquet, the reports, logs or Prefect):
# [identifiers]
# columns = ["mrn", "name", "responsible clinician"]
# From an OMOP, FHIR or Synthea export, a column may name where the source holds it
# (FHIR: an identifier's type code, type text or system; OMOP: person_source_value):
# sources = {{ mrn = "MR" }}

# Your own mappings, laid over the shipped tables (data/lab_test_names.csv, drug_codes.csv,
# diagnosis_codes.csv, diagnosis_codes_snomed.csv): each file has the shipped table's columns
# plus decided_by (who decided the mapping, never empty). A row replaces the shipped rows of
# its key, a new key extends the table, an empty analyte/drug_group/condition unmaps the key.
# Paths are relative to this file; the files' SHA-256 is part of the rules hash.
# [mappings]
# lab_test_names = "mappings/lab_test_names.csv"
#   test_name_key,analyte,note,decided_by
#   Neutrophils,neutrophils_pct,our analyser reports a share,Dr A (lab lead)
# drug_codes = "mappings/drug_codes.csv"
#   drug_group,ingredient,code_system,code,source,decided_by
# diagnosis_codes = "mappings/diagnosis_codes.csv"
#   condition,code,description,source,decided_by
# diagnosis_codes_snomed = "mappings/diagnosis_codes_snomed.csv"

# The small-number rule of the shareable population report:
# [report.disclosure]
# redact_at_or_below = 10
# round_to = 5
# source = "our information governance, Dec 2026"
"""

PREFECT_TEMPLATE = """\
# Prefect deployments of this site, made by `b12screen init` from {config_name}.
#
# Each deployment's one parameter is the config file: every run reads the folders, the rules,
# the memory limit and the alerts from it, so a change there applies from the next run without
# deploying again. The schedule and the time zone are written here: after changing them in
# {config_name}, run `b12screen init {site}` again (it keeps the config and the rules) and
# deploy again.
#
#   prefect work-pool create {pool} --type process
#   prefect --no-prompt deploy --all --prefect-file {prefect_file}
#   prefect worker start --pool {pool}
name: b12screen-site
prefect-version: {prefect_version}

pull:
  - prefect.deployments.steps.set_working_directory:
      directory: {site_json}

deployments:
  - name: nightly-screening
    description: >-
      Screen tonight's extracts and publish the worklist (b12screen's flows.nightly).
      Settings from the site config; as_of is today in the site's time zone.
    entrypoint: flows.nightly.nightly_screening
    parameters:
      config: {config_json}
    schedules:
      - cron: "{nightly_cron}"
        timezone: {timezone_json}
    concurrency_limit: 1 # never two screening runs at once (they share the database)
    tags: [b12screen]
    work_pool:
      name: {pool}

  - name: monthly-audit
    description: >-
      The previous calendar month's reports from the run registry (b12screen's flows.monthly).
    entrypoint: flows.monthly.monthly_audit
    parameters:
      config: {config_json}
    schedules:
      - cron: "{monthly_cron}"
        timezone: {timezone_json}
    tags: [b12screen]
    work_pool:
      name: {pool}
"""


@dataclass
class Scaffold:
    folder: Path
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.folder / CONFIG_NAME

    @property
    def prefect_file(self) -> Path:
        return self.folder / "prefect.yaml"


def _cron(hh_mm: str, day: str = "*") -> str:
    hour, minute = hh_mm.split(":")
    return f"{int(minute)} {int(hour)} {day} * *"


def _json(value: str) -> str:
    import json

    return json.dumps(value)  # a JSON string is a YAML string, quoting included


def prefect_yaml(site: Path, config: SiteFile) -> str:
    """The site's prefect.yaml, from its (checked) config."""
    import prefect

    site = site.resolve()
    return PREFECT_TEMPLATE.format(
        config_name=CONFIG_NAME,
        site=site,
        pool=WORK_POOL,
        prefect_file=site / "prefect.yaml",
        prefect_version=prefect.__version__,
        site_json=_json(str(site)),
        config_json=_json(str(site / CONFIG_NAME)),
        nightly_cron=_cron(config.schedule.nightly),
        monthly_cron=_cron(config.schedule.monthly, str(config.schedule.monthly_day)),
        timezone_json=_json(config.timezone),
    )


def init_site(folder: Path, *, timezone: str = "UTC", nightly: str = "02:30") -> Scaffold:
    """Write the site's files; keep a config or rules file that is there already."""
    try:
        check_timezone(timezone)
    except ValueError as exc:
        raise UsageError(f"--timezone: {exc}") from None
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} exists and is not a folder")
    result = Scaffold(folder)
    name = "".join(c if c.isalnum() else "-" for c in folder.resolve().name.lower()).strip("-")
    files = {
        result.config: CONFIG_TEMPLATE.format(
            config=result.config, rules=RULES_NAME, timezone=timezone, nightly=nightly
        ),
        folder / RULES_NAME: RULES_TEMPLATE.format(name=name or "site"),
    }
    try:
        (folder / "extracts").mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            if path.exists():
                result.kept.append(path)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            result.written.append(path)
        config = read_site_file(result.config)  # the site's own, if it was kept
        result.prefect_file.write_text(prefect_yaml(folder, config), encoding="utf-8")
        result.written.append(result.prefect_file)
    except OSError as exc:
        raise UsageError(f"cannot write the site folder {folder}: {exc.strerror}") from None
    return result
