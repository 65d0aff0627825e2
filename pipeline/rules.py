"""The versioned rules file: load, check, describe and hand to DuckDB.

A rules file is TOML (see data/rules/guidance.toml). It is checked before any data is read:
an unknown key, a missing value or a wrong type stops the run with a message naming the key.
The SQL reads each parameter as ``getvariable('criterion.param')``; a parameter the SQL asks
for that the file lacks, or one the file has that no SQL uses, is an error too, so a typo can
never turn a criterion silently off.
"""

from __future__ import annotations

import functools
import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from pipeline import checked, resources
from pipeline.errors import RulesError
from pipeline.mappings import SiteMapping, known_targets, read_site_mapping
from pipeline.screening.models import model_graph
from pipeline.sqltext import ident, literal

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


Value = bool | int | float | list[str] | list[int]


class Sourced(BaseModel):
    """A value (number, switch, or list of codes/groups) with its unit and where it comes from."""

    model_config = _STRICT
    value: Value
    unit: str
    source: str


class RuleSet(BaseModel):
    model_config = _STRICT
    name: str
    version: str
    description: str


class Settings(BaseModel):
    model_config = _STRICT
    canonical_decimals: Sourced
    use_lab_reference_range: Sourced
    minimum_age: Sourced  # patients younger than this on the as-of date are not screened
    b12_therapy_groups: Sourced  # what "on B12 therapy" means where the worklist advice asks
    single_dose_cover_days: Sourced  # a one-day B12 administration record covers this many days
    # a FHIR order with only a start (authoredOn) covers this many days (sql/adapters/fhir)
    open_order_days: Sourced
    max_age_years: Sourced


class Plausible(BaseModel):
    """The physiologically possible values of an analyte, in its canonical unit; a result
    outside them is an impossible value (a unit slip, a typing error) and is quarantined."""

    model_config = _STRICT
    low: float
    high: float
    source: str

    @model_validator(mode="after")
    def _ordered(self) -> Plausible:
        if not self.low < self.high:
            raise ValueError("low must be below high")
        return self


class Analyte(BaseModel):
    model_config = _STRICT
    label: str
    canonical_unit: str
    loinc: list[str]
    lookback_days: int
    report_decimals: int  # decimals a lab reports the canonical value with (evidence texts)
    source: str
    plausible: Plausible

    @field_validator("report_decimals")
    @classmethod
    def _decimals(cls, v: int) -> int:
        if not 0 <= v <= 6:
            raise ValueError("must be 0 to 6 decimal places")
        return v

    @field_validator("lookback_days")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be a positive number of days")
        return v


class Criterion(BaseModel):
    model_config = _STRICT
    title: str  # the criterion's name in words, as the worklist and reports show it
    role: Literal["action", "context"]
    priority: str | None = None  # one of [priorities] scale
    summary: str
    action: str | None = None
    enabled: bool = True  # a site profile may switch a criterion off (its flags are not written)
    params: dict[str, Sourced] = {}

    @model_validator(mode="after")
    def _action_fields(self) -> Criterion:
        if self.role == "action" and (self.priority is None or not self.action):
            raise ValueError("an action criterion needs a priority and an action text")
        if self.role == "context" and (self.priority is not None or self.action):
            raise ValueError("a context criterion has no priority and no action text")
        return self


class Advice(BaseModel):
    """A sentence of the worklist's recommended action, added once to a patient's row when the
    patient meets any of ``when_any`` and (if given) any of ``and_any``. Each item is a
    criterion id, or ``criterion:key`` for that criterion's flags carrying that note key."""

    model_config = _STRICT
    text: str
    when_any: list[str]
    and_any: list[str] = []
    source: str


class WorklistSpec(BaseModel):
    """One audience's worklist: the patients with a flag matching any of its items and none of
    its ``exclude`` items. An item is a criterion id, or ``criterion:key`` for that criterion's
    flags carrying that note key (``b12_screening_due:age_only``: screening due for age alone)."""

    model_config = _STRICT
    title: str
    audience: str
    criteria: list[str]
    exclude: list[str] = []


class Measure(BaseModel):
    """A care-process measure of the audit report: numerator / denominator, each defined."""

    model_config = _STRICT
    title: str
    denominator: str
    numerator: str
    better: Literal["higher", "lower", "neither"]
    params: dict[str, Sourced] = {}


class Disclosure(BaseModel):
    """The one small-number rule for every count that leaves the care team."""

    model_config = _STRICT
    redact_at_or_below: int
    round_to: int
    source: str

    @model_validator(mode="after")
    def _sane(self) -> Disclosure:
        if self.redact_at_or_below < 0 or self.round_to < 1:
            raise ValueError("redact_at_or_below must be >= 0 and round_to >= 1")
        return self


class Report(BaseModel):
    """How the population report groups and states its figures."""

    model_config = _STRICT
    age_bands: list[int]
    confidence: float
    disclosure: Disclosure
    implausible_iqr_fence: float
    trend_days: int
    source: str

    @field_validator("age_bands")
    @classmethod
    def _ascending(cls, v: list[int]) -> list[int]:
        if not v or v[0] != 0 or any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError("must start at 0 and ascend (lower bounds of the bands, in years)")
        return v

    @field_validator("confidence")
    @classmethod
    def _level(cls, v: float) -> float:
        if not 0 < v < 1:
            raise ValueError("must be between 0 and 1 (0.95 for 95%)")
        return v

    def band_labels(self) -> list[str]:
        bounds = self.age_bands
        labels = [f"{a}-{b - 1}" for a, b in zip(bounds, bounds[1:], strict=False)]
        return [*labels, f"{bounds[-1]}+"]


class Priorities(BaseModel):
    model_config = _STRICT
    scale: list[str]  # most urgent first
    source: str

    @field_validator("scale")
    @classmethod
    def _distinct_words(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v) or not all(re.fullmatch(r"[a-z]{1,16}", p) for p in v):
            raise ValueError("must list distinct lower-case words, most urgent first")
        if "total" in v:
            raise ValueError("'total' is the reports' sum, not a priority")
        return v


# Columns of the worklist a site's identifiers may not take the name of.
WORKLIST_COLUMNS = frozenset(
    [
        "patient_id",
        "priority",
        "criteria",
        "recommended_action",
        "evidence",
        "status",
        "latest_evidence_on",
        "feedback",
        "sex",
        "age",
        "site",
        "birth_date",
        "death_date",
        "rules_version",
        "run_id",
        "as_of",
    ]
)


class Identifiers(BaseModel):
    """Columns of the patients extract that a site carries onto its clinician worklists
    (worklist.csv, worklist_<list>.csv and worklist.xlsx), right after patient_id, so a list
    can be routed without a join back to the EHR: an MRN, a name, the responsible clinician.
    They are never written to flags.parquet, the reports, logs or the scheduler's records."""

    model_config = _STRICT
    columns: list[str] = []
    # where an OMOP, FHIR or Synthea source holds a column, when not under its own name: a key
    # of the identifiers its patients adapter offers (FHIR: an identifier's type code, type
    # text or system; OMOP: person_source_value; Synthea: ssn, drivers, passport, first, last)
    sources: dict[str, str] = {}

    @model_validator(mode="after")
    def _sources_name_columns(self) -> Identifiers:
        keys = set(self.keys)
        for name, source in self.sources.items():
            if name.strip().lower() not in keys:
                raise ValueError(f"sources: {name!r} is not one of the columns")
            if not source.strip():
                raise ValueError(f"sources: {name!r} names no source")
        return self

    @field_validator("columns")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        keys = [c.strip().lower() for c in v]
        if len(set(keys)) != len(keys):
            raise ValueError("names a column twice (names are case-insensitive)")
        for name, key in zip(v, keys, strict=True):
            if not re.fullmatch(r"[a-z][a-z0-9_ ]{0,39}", key):
                raise ValueError(
                    f"{name!r}: a column name of 1-40 letters, digits, spaces or _, "
                    "starting with a letter"
                )
            if key in WORKLIST_COLUMNS:
                raise ValueError(f"{name!r} is a column b12screen writes itself")
        return v

    @property
    def keys(self) -> tuple[str, ...]:
        """The names as the extract's columns are matched (lower case, trimmed)."""
        return tuple(c.strip().lower() for c in self.columns)

    def sources_by_key(self) -> dict[str, str]:
        """Each column's key and the key of the source identifier it is read from (lower case):
        its ``sources`` entry, else its own name."""
        given = {k.strip().lower(): v.strip().lower() for k, v in self.sources.items()}
        return {key: given.get(key, key) for key in self.keys}


class Mappings(BaseModel):
    """The site's own mapping files (pipeline/mappings.py), each laid over the shipped table of
    the same name in data/: a path relative to the profile file that names it."""

    model_config = _STRICT
    lab_test_names: str | None = None
    drug_codes: str | None = None
    diagnosis_codes: str | None = None
    diagnosis_codes_snomed: str | None = None


class RulesFile(BaseModel):
    model_config = _STRICT
    ruleset: RuleSet
    priorities: Priorities
    settings: Settings
    analytes: dict[str, Analyte]
    criteria: dict[str, Criterion]
    advice: dict[str, Advice] = {}
    worklists: dict[str, WorklistSpec] = {}
    measures: dict[str, Measure] = {}
    report: Report
    identifiers: Identifiers = Identifiers()
    mappings: Mappings = Mappings()

    @model_validator(mode="after")
    def _advice_names_criteria(self) -> RulesFile:
        for name, a in self.advice.items():
            if not a.when_any:
                raise ValueError(f"advice {name}: when_any must name at least one criterion")
            for item in (*a.when_any, *a.and_any):
                cid, _, key = item.partition(":")
                if cid not in self.criteria or (
                    ":" in item and not re.fullmatch(r"[a-z0-9_]+", key)
                ):
                    raise ValueError(f"advice {name}: unknown criterion {item!r}")
        return self

    @model_validator(mode="after")
    def _worklists_name_criteria(self) -> RulesFile:
        for name, spec in self.worklists.items():
            if not re.fullmatch(r"[a-z0-9_]{1,24}", name):
                raise ValueError(f"worklist name {name!r}: use 1-24 lower-case letters, digits, _")
            unknown = [
                c
                for c in (*spec.criteria, *spec.exclude)
                if c.partition(":")[0] not in self.criteria
            ]
            if unknown:
                raise ValueError(f"worklist {name}: unknown criterion {unknown[0]!r}")
        if self.worklists:
            listed = {c.partition(":")[0] for s in self.worklists.values() for c in s.criteria}
            unlisted = [
                cid
                for cid, c in self.criteria.items()
                if c.role == "action" and c.enabled and cid not in listed
            ]
            if unlisted:
                raise ValueError(
                    f"action criterion {unlisted[0]} is on no list of [worklists]: add it to "
                    "one, so that the patients it puts on the worklist reach an audience"
                )
        return self

    @model_validator(mode="after")
    def _priorities_on_the_scale(self) -> RulesFile:
        for cid, c in self.criteria.items():
            if c.priority is not None and c.priority not in self.priorities.scale:
                raise ValueError(
                    f"criterion {cid}: priority {c.priority!r} is not on the scale "
                    f"{self.priorities.scale}"
                )
        return self

    @model_validator(mode="after")
    def _one_analyte_per_code(self) -> RulesFile:
        seen: dict[str, str] = {}
        for aid, analyte in self.analytes.items():
            for code in analyte.loinc:
                if code in seen:
                    raise ValueError(f"LOINC {code} is listed under both {seen[code]} and {aid}")
                seen[code] = aid
        return self


_GETVARIABLE = re.compile(r"getvariable\('([^']+)'\)")


@dataclass(frozen=True)
class Rules:
    """A checked rules file with its provenance."""

    path: Path
    sha256: str  # of the rules file (and the profiles it extends) and its site mapping files
    spec: RulesFile
    mappings: tuple[SiteMapping, ...] = ()  # the site's own mapping files, checked

    @property
    def version(self) -> str:
        return f"{self.spec.ruleset.name}@{self.spec.ruleset.version}"

    @property
    def priorities(self) -> tuple[str, ...]:
        """The priority scale, most urgent first (rank 0 = the first)."""
        return tuple(self.spec.priorities.scale)

    @property
    def criteria_order(self) -> list[str]:
        return list(self.spec.criteria)

    def variables(self) -> dict[str, Value]:
        """Every value the SQL may read with getvariable(), by name."""
        out: dict[str, Value] = {
            f"settings.{k}": v.value for k, v in self.spec.settings if isinstance(v, Sourced)
        }
        for cid, crit in (*self.spec.criteria.items(), *self.spec.measures.items()):
            for pname, p in crit.params.items():
                out[f"{cid}.{pname}"] = p.value
        out["report.implausible_iqr_fence"] = self.spec.report.implausible_iqr_fence
        return out


def resolve_rules_path(choice: str | Path | None) -> Path:
    """A path, or a profile name shipped in data/rules (``guidance``, ``primary-sources``)."""
    if choice is None:
        return resources.default_rules_path()
    p = Path(choice)
    if p.suffix != ".toml" and not p.exists():
        shipped = resources.rules_dir() / f"{choice}.toml"
        if shipped.exists():
            return shipped
        names = ", ".join(sorted(x.stem for x in resources.rules_dir().glob("*.toml")))
        raise RulesError(f"no rules file or profile named {choice!r} (profiles: {names})")
    if not p.is_file():
        raise RulesError(f"rules file not found: {p}")
    return p


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_toml(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict, bytes]:
    """The file's tables, with ``extends = "profile"`` resolved (the base, overridden here)."""
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulesError(f"rules file {path.name} is not valid TOML: {exc}") from None
    mappings = data.get("mappings")
    if isinstance(mappings, dict):  # each file is relative to the profile that names it
        for key, value in mappings.items():
            if isinstance(value, str) and value.strip():
                mappings[key] = str(path.parent / value.strip())
    base_name = data.pop("extends", None)
    if base_name is None:
        return data, raw
    if not isinstance(base_name, str):
        raise RulesError(f"rules file {path.name}: extends: must be a profile name or path")
    # A profile name, or a file next to this one.
    base_path = resolve_rules_path(
        path.parent / base_name if base_name.endswith(".toml") else base_name
    )
    if base_path.resolve() in seen:
        raise RulesError(f"rules file {path.name}: extends: {base_name} extends itself")
    base, base_raw = _read_toml(base_path, (*seen, path.resolve()))
    merged = _merge(base, data)
    # A profile that makes an action criterion context drops the base's priority and action
    # text with it (a context criterion has neither).
    for cid, override in data.get("criteria", {}).items():
        if isinstance(override, dict) and override.get("role") == "context":
            for key in ("priority", "action"):
                if key not in override:
                    merged["criteria"][cid].pop(key, None)
    return merged, base_raw + b"\n" + raw


def load_rules(choice: str | Path | None = None) -> Rules:
    path = resolve_rules_path(choice)
    data, raw = _read_toml(path)
    try:
        spec = RulesFile.model_validate(data)
    except ValidationError as exc:
        raise RulesError(f"rules file {path.name}: {checked.one_line(exc)}") from None
    mappings = _site_mappings(spec)
    digest = hashlib.sha256(raw)
    for m in mappings:  # a changed mapping file changes the rules hash every output carries
        digest.update(f"\n[mappings.{m.table}]\n".encode())
        digest.update(m.raw)
    rules = Rules(path=path, sha256=digest.hexdigest(), spec=spec, mappings=mappings)
    model_graph()  # the SQL models agree with their '-- reads:' lines and form no circle
    check_against_sql(rules)
    check_against_reference_data(rules)
    return rules


def _site_mappings(spec: RulesFile) -> tuple[SiteMapping, ...]:
    known = known_targets(set(spec.analytes))
    return tuple(
        read_site_mapping(table, Path(value), known)
        for table, value in spec.mappings
        if value is not None
    )


def reference_names() -> dict[str, set[str]]:
    """Drug groups and conditions defined by the code lists in data/."""
    import csv

    def column(name: str, col: str) -> set[str]:
        with (resources.data_dir() / name).open(encoding="utf-8", newline="") as f:
            return {row[col] for row in csv.DictReader(f)}

    return {
        "_groups": column("drug_codes.csv", "drug_group"),
        "_conditions": column("diagnosis_codes.csv", "condition"),
    }


def check_against_reference_data(rules: Rules) -> None:
    """List parameters name drug groups (``*_groups``), conditions (``*_conditions``) or analytes;
    ``*_routes`` lists are routes as extracts write them (free text)."""
    known = reference_names() | {"_analytes": set(rules.spec.analytes)}
    for key, value in rules.variables().items():
        if not isinstance(value, list) or all(isinstance(v, int) for v in value) and value:
            continue
        if key.endswith("_routes"):
            continue
        kind = next((k for k in known if key.endswith(k)), None)
        if kind is None:
            raise RulesError(
                f"rules file {rules.path.name}: {key}: a list parameter must end in _groups, _conditions, _analytes or _routes"
            )
        unknown = sorted(set(value) - known[kind])
        if unknown:
            label = {"_groups": "drug group", "_conditions": "condition", "_analytes": "analyte"}[
                kind
            ]
            raise RulesError(f"rules file {rules.path.name}: {key}: unknown {label} {unknown[0]!r}")


def sql_variables(sql_root: Path | None = None) -> dict[str, list[str]]:
    """Every getvariable() name in the project's SQL, with the files that use it."""
    root = sql_root or resources.sql_dir()
    used: dict[str, list[str]] = {}
    for f in sorted(root.rglob("*.sql")):
        for name in _GETVARIABLE.findall(f.read_text(encoding="utf-8")):
            used.setdefault(name, []).append(str(f.relative_to(root)))
    return used


def check_against_sql(rules: Rules) -> None:
    """The rules file and the SQL must agree on every parameter and every criterion."""
    name = rules.path.name
    have = rules.variables()
    # run.* (as-of date, run id, the worklist's part) are set by the runner, not by the rules file.
    used = {k: v for k, v in sql_variables().items() if not k.startswith("run.")}
    missing = sorted(set(used) - set(have))
    if missing:
        where = used[missing[0]][0]
        raise RulesError(f"rules file {name}: missing value {missing[0]} (used by sql/{where})")
    unused = sorted(set(have) - set(used))
    if unused:
        raise RulesError(f"rules file {name}: unknown key {unused[0]} (no criterion uses it)")
    criteria_sql = {p.stem for p in (resources.sql_dir() / "criteria").glob("*.sql")}
    for cid in rules.criteria_order:
        if cid not in criteria_sql:
            raise RulesError(
                f"rules file {name}: unknown criterion criteria.{cid} (no sql/criteria/{cid}.sql)"
            )
    not_in_rules = sorted(criteria_sql - set(rules.criteria_order))
    if not_in_rules:
        raise RulesError(f"rules file {name}: missing criterion criteria.{not_in_rules[0]}")
    measures_sql = {p.stem for p in (resources.sql_dir() / "measures").glob("*.sql")}
    for mid in rules.spec.measures:
        if mid not in measures_sql:
            raise RulesError(
                f"rules file {name}: unknown measure measures.{mid} (no sql/measures/{mid}.sql)"
            )
    if extra := sorted(measures_sql - set(rules.spec.measures)):
        raise RulesError(f"rules file {name}: missing measure measures.{extra[0]}")


def _sql_literal(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return f"{value!r}::INTEGER[]"
    if isinstance(value, list):
        items = ", ".join(literal(v) for v in value)
        return f"[{items}]::VARCHAR[]"
    return repr(float(value))


def apply_rules(con: duckdb.DuckDBPyConnection, rules: Rules) -> None:
    """Set every parameter as a DuckDB variable and write the rule tables the SQL joins."""
    for key, value in rules.variables().items():
        con.execute(f"SET VARIABLE {ident(key)} = {_sql_literal(value)}")
    spec = rules.spec
    analytes = pl.DataFrame(
        {
            "analyte": list(spec.analytes),
            "label": [a.label for a in spec.analytes.values()],
            "canonical_unit": [a.canonical_unit for a in spec.analytes.values()],
            "lookback_days": [a.lookback_days for a in spec.analytes.values()],
            "plausible_low": [a.plausible.low for a in spec.analytes.values()],
            "plausible_high": [a.plausible.high for a in spec.analytes.values()],
            "report_decimals": [a.report_decimals for a in spec.analytes.values()],
        }
    )
    codes = pl.DataFrame(
        [(code, aid) for aid, a in spec.analytes.items() for code in a.loinc],
        schema={"loinc": pl.String, "analyte": pl.String},
        orient="row",
    )
    criteria = pl.DataFrame(
        {
            "criterion": list(spec.criteria),
            "ordinal": list(range(1, len(spec.criteria) + 1)),
            "role": [c.role for c in spec.criteria.values()],
            "priority": [c.priority for c in spec.criteria.values()],
            "priority_rank": [
                rules.priorities.index(c.priority) if c.priority else None
                for c in spec.criteria.values()
            ],
            "action": [
                fill_values(rules, cid, c.action) if c.action else None
                for cid, c in spec.criteria.items()
            ],
            "title": [c.title for c in spec.criteria.values()],
            "enabled": [c.enabled for c in spec.criteria.values()],
        },
        schema_overrides={"priority_rank": pl.Int32},
    )
    advice = pl.DataFrame(
        [
            (key, n, fill_values(rules, key, a.text), a.when_any, a.and_any)
            for n, (key, a) in enumerate(spec.advice.items(), start=1)
        ],
        schema={
            "advice": pl.String,
            "ordinal": pl.Int32,
            "text": pl.String,
            "when_any": pl.List(pl.String),
            "and_any": pl.List(pl.String),
        },
        orient="row",
    )
    priorities = pl.DataFrame(
        {"priority": list(rules.priorities), "rank": list(range(len(rules.priorities)))},
        schema={"priority": pl.String, "rank": pl.Int32},
    )
    for table, frame in (
        ("rule_priorities", priorities),
        ("rule_advice", advice),
        ("rule_analytes", analytes),
        ("rule_lab_codes", codes),
        ("rule_criteria", criteria),
    ):
        con.register("_frame", frame)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM _frame")
        con.unregister("_frame")


@functools.cache
def _default_priorities() -> tuple[str, ...]:
    return load_rules(None).priorities


def priority_scale(rules: Rules | None = None) -> tuple[str, ...]:
    """The priority scale, most urgent first: of ``rules``, or of the shipped default profile
    for readers of records that hold no rules (reports over runs, the CLI summary)."""
    return rules.priorities if rules is not None else _default_priorities()


def describe_criterion(rules: Rules, cid: str) -> str:
    """The criterion's summary with its parameter values filled in (for docs and the audit)."""
    return fill_values(rules, cid, rules.spec.criteria[cid].summary)


def fill_values(rules: Rules, owner: str, text: str) -> str:
    """``text`` with each ``{param}`` of ``owner`` (a criterion or measure) replaced by its value."""
    values = rules.variables()

    def fill(m: re.Match[str]) -> str:
        key = m.group(1)
        full = key if "." in key else f"{owner}.{key}"
        v = values.get(full)
        if v is None:
            return m.group(0)
        if isinstance(v, list):
            return ", ".join(str(x).replace("_", " ") for x in v)
        return ("on" if v else "off") if isinstance(v, bool) else f"{v:g}"

    return re.sub(r"\{([a-z0-9_.]+)\}", fill, text)
