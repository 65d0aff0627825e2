"""Spec-style test harness: a few patients and lab rows in, the screening's flags out.

In the manner of ehrQL's spec tests, a test states its input as plain rows (lists of dicts, or
a small ASCII table) and its expectation by hand; the harness writes the extracts, runs the
real pipeline once (``run_screening``) and hands back what it produced::

    result = screen(
        patients=parse_table('''
            patient_id | sex
            p1         | F
        '''),
        labs=parse_table('''
            patient_id | analyte | value | unit
            p1         | b12     | 150   | pg/mL
        '''),
        workdir=tmp_path,
    )
    assert ("p1", "b12_deficient") in result.flag_set

Each run costs a few tenths of a second, so a test module puts many cases (one patient each)
into one table and runs it once (see the module-scoped fixtures of test_criteria.py).

Conveniences (all optional):
- a lab row may name an ``analyte`` (a key of [analytes] in the rules file) instead of a
  ``loinc``: the analyte's first LOINC code is used, and its canonical unit when ``unit`` is
  missing;
- ``collected_at`` defaults to :data:`DEFAULT_COLLECTED_AT` (inside every look-back window);
- every patient_id a lab, medication or diagnosis row names gets a patients row (adult, sex
  ``M``) unless the test gives one or passes ``add_missing_patients=False``;
- ``medications`` and ``diagnoses`` rows (the columns of docs/inputs.md) are written to medications.csv
  and diagnoses.csv when given (the files are left out when the arguments are ``None``);
- ``rules`` picks the rules profile or file (``"primary-sources"``), as ``--rules`` does.

Besides the pipeline run, :class:`StagingDB` sets up an in-memory DuckDB the way the runner
does (macros, rules, reference tables) and runs the real staging SQL over rows without
writing files: fast enough for property-based tests.
"""

from __future__ import annotations

import csv
import io
import json
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
RULES_PATH = ROOT / "data" / "rules" / "guidance.toml"
UNITS_PATH = ROOT / "data" / "lab_units.csv"
TEST_NAMES_PATH = ROOT / "data" / "lab_test_names.csv"

AS_OF = date(2026, 11, 24)
DEFAULT_COLLECTED_AT = "2026-11-01"  # 23 days before AS_OF: inside the 90- and 365-day windows
DEFAULT_BIRTH_DATE = "1960-01-01"  # 66 years old at AS_OF: an adult, younger than 75
DEFAULT_SEX = "M"

PATIENT_COLUMNS = ("patient_id", "sex", "birth_date", "site", "death_date")
LAB_COLUMNS = (
    "patient_id",
    "collected_at",
    "loinc",
    "test_name",
    "value",
    "unit",
    "result_id",
    "reference_low",
    "reference_high",
)
MEDICATION_COLUMNS = (
    "patient_id",
    "medication",
    "rxnorm",
    "atc",
    "start_date",
    "end_date",
    "route",
)
DIAGNOSIS_COLUMNS = ("patient_id", "code", "recorded_at", "description", "code_system")

# The criteria of the catalogue (docs/criteria.md) that read lab results only.
LAB_CRITERIA = frozenset(
    {
        "b12_deficient",
        "b12_indeterminate",
        "mma_elevated",
        "homocysteine_elevated",
        "folate_low",
        "anemia",
        "critical_anemia",
        "leukopenia",
        "neutropenia",
        "thrombocytopenia",
        "macrocytosis",
        "pancytopenia",
        "deficiency_with_cytopenia",
        "cytopenia_b12_untested",
        "pseudo_tma_suspect",
        "severe_cytopenia",
    }
)
# ... and those that read medications, diagnoses or the age as well.
MED_CRITERIA = frozenset(
    {
        "metformin_long_term",
        "acid_suppression_long_term",
        "b12_lowering_drug",
        "risk_condition",
        "b12_screening_due",
        "folate_without_b12",
        "cyanocobalamin_renal",
        "deficiency_untreated",
        "monitoring_overdue",
        "b12_iv_route",
    }
)


# -- the rules file and reference data, read directly (never through project code) -----------
def rules() -> dict[str, Any]:
    with RULES_PATH.open("rb") as fh:
        return tomllib.load(fh)


RULES = rules()


def param(name: str) -> float:
    """A criterion parameter of the rules file: ``param('b12_deficient.below_pg_ml')``."""
    criterion, key = name.split(".")
    return RULES["criteria"][criterion]["params"][key]["value"]


def lookback_days(analyte: str) -> int:
    return RULES["analytes"][analyte]["lookback_days"]


def loinc_of(analyte: str) -> str:
    """The analyte's first LOINC code in the rules file."""
    return RULES["analytes"][analyte]["loinc"][0]


def canonical_unit(analyte: str) -> str:
    return RULES["analytes"][analyte]["canonical_unit"]


def unit_rows() -> list[dict[str, str]]:
    """data/lab_units.csv as rows: analyte, unit_key, factor_to_canonical, source."""
    with UNITS_PATH.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def units_of(analyte: str) -> list[tuple[str, str]]:
    """(unit_key, factor as written) for every unit data/lab_units.csv lists for ``analyte``."""
    return [
        (r["unit_key"], r["factor_to_canonical"]) for r in unit_rows() if r["analyte"] == analyte
    ]


# -- tables --------------------------------------------------------------------------------
def rows_by_patient(text: str) -> dict[str, list[dict[str, str | None]]]:
    """The rows of a given/expect table grouped by patient_id, patients in table order."""
    grouped: dict[str, list[dict[str, str | None]]] = {}
    for row in parse_table(text):
        assert row["patient_id"], f"row without patient_id: {row}"
        grouped.setdefault(row["patient_id"], []).append(row)
    return grouped


def parse_table(text: str) -> list[dict[str, str | None]]:
    """Rows of a small ASCII table: a header line, then one line per row, cells split by ``|``.

    Outer ``|`` borders are optional (if the header has them, every row has them); lines of only ``-``, ``=``, ``+``, ``|`` and spaces
    are separators; blank lines and lines starting with ``#`` are skipped. Cells are stripped
    and an empty cell is ``None``.
    """
    lines = [
        line.strip()
        for line in text.strip("\n").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    lines = [line for line in lines if set(line) - set("-=+| ")]
    if not lines:
        return []

    # Outer borders count only when the header has them, so a row may end in an empty cell.
    left, right = lines[0].startswith("|"), lines[0].endswith("|")

    def cells(line: str) -> list[str]:
        parts = line.split("|")
        return [c.strip() for c in parts[int(left) : len(parts) - int(right)]]

    header = cells(lines[0])
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        values = cells(line)
        if len(values) != len(header):
            raise ValueError(f"table line {number} has {len(values)} cells, header {len(header)}")
        rows.append({k: (v if v != "" else None) for k, v in zip(header, values, strict=True)})
    return rows


def from_wide(
    rows: Iterable[Mapping[str, str | None]],
    analytes: Sequence[str],
    keep: Sequence[str] = ("expect",),
) -> tuple[list[dict], list[dict], dict[str, dict]]:
    """Split a wide table (one row per patient, one column per analyte) into extracts.

    A cell of an analyte column is ``VALUE [UNIT] [@COLLECTED_AT]`` (``400``, ``132.8 pmol/L``,
    ``<150 @2026-01-05``); the unit defaults to the analyte's canonical unit and the date to
    :data:`DEFAULT_COLLECTED_AT`. The columns named in ``keep`` go to the third return value
    (by patient_id), every other column to the patients row. Returns (patients, labs, kept).
    """
    patients, labs, kept = [], [], {}
    for row in rows:
        pid = row["patient_id"]
        patient = {"patient_id": pid}
        kept[pid] = {k: row.get(k) for k in keep}
        for column, cell in row.items():
            if column in analytes:
                if cell is None:
                    continue
                tokens = cell.split()
                when = [t[1:] for t in tokens if t.startswith("@")]
                rest = [t for t in tokens if not t.startswith("@")]
                lab = {"patient_id": pid, "analyte": column, "value": rest[0]}
                if len(rest) > 1:
                    lab["unit"] = " ".join(rest[1:])
                if when:
                    lab["collected_at"] = when[0]
                labs.append(lab)
            elif column not in keep and column != "patient_id":
                patient[column] = cell
        patients.append(patient)
    return patients, labs, kept


def criteria_set(text: str | None) -> frozenset[str]:
    """An ``expect`` cell: criterion ids separated by spaces or commas; ``-``/empty = none."""
    if text is None or text.strip() in ("", "-"):
        return frozenset()
    return frozenset(t for t in text.replace(",", " ").split() if t)


# -- one pipeline run ------------------------------------------------------------------------
def _lab_row(row: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(row)
    analyte = row.pop("analyte", None)
    if analyte is not None:
        if row.get("loinc") is None and row.get("test_name") is None:
            row["loinc"] = loinc_of(analyte)
        if "unit" not in row or row["unit"] is None:
            row["unit"] = canonical_unit(analyte)
    row.setdefault("collected_at", DEFAULT_COLLECTED_AT)
    if row["collected_at"] is None:
        row["collected_at"] = DEFAULT_COLLECTED_AT
    unknown = set(row) - set(LAB_COLUMNS)
    if unknown:
        raise ValueError(f"unknown lab columns {sorted(unknown)}")
    return row


def _patient_row(row: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(row)
    if "sex" not in row:
        row["sex"] = DEFAULT_SEX
    if row.get("birth_date") is None:
        row["birth_date"] = DEFAULT_BIRTH_DATE
    unknown = set(row) - set(PATIENT_COLUMNS)
    if unknown:
        raise ValueError(f"unknown patient columns {sorted(unknown)}")
    return row


def _plain_row(row: Mapping[str, Any], columns: Sequence[str], kind: str) -> dict[str, Any]:
    row = dict(row)
    unknown = set(row) - set(columns)
    if unknown:
        raise ValueError(f"unknown {kind} columns {sorted(unknown)}")
    return row


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """A CSV extract: header row, ``None`` as an empty field, quoting only where needed."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else str(row[c]) for c in columns])


@dataclass
class ScreeningResult:
    """What one screening produced: flags.parquet as a frame, quarantine.csv as rows and
    worklist.csv as text, each from the same query or frame the run writes its file from."""

    flags: pl.DataFrame
    quarantine: list[dict[str, Any]]
    worklist_csv: str
    out: Path | None = None  # the published run folder (screen_through_files only)
    labs: list[dict[str, Any]] = field(default_factory=list)
    medications: list[dict[str, Any]] = field(default_factory=list)
    diagnoses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def flag_set(self) -> set[tuple[str, str]]:
        return set(zip(self.flags["patient_id"], self.flags["criterion"], strict=True))

    def criteria(self, patient_id: str) -> set[str]:
        return {c for p, c in self.flag_set if p == patient_id}

    def flag(self, patient_id: str, criterion: str) -> dict[str, Any] | None:
        rows = self.flags.filter(
            (pl.col("patient_id") == patient_id) & (pl.col("criterion") == criterion)
        ).to_dicts()
        assert len(rows) <= 1, f"{len(rows)} rows for {patient_id} {criterion}"
        return rows[0] if rows else None

    def worklist_rows(self) -> list[dict[str, str]]:
        """worklist.csv's rows in its order (evidence, criteria, priority, ... as written)."""
        return list(csv.DictReader(io.StringIO(self.worklist_csv, newline="")))

    def worklist(self) -> dict[str, dict[str, str]]:
        """worklist.csv, its rows by patient_id."""
        return {r["patient_id"]: r for r in self.worklist_rows()}

    def quarantined(self, patient_id: str | None = None) -> list[dict[str, Any]]:
        """Quarantine rows (with the raw row parsed into ``raw``), of one patient if given."""
        if patient_id is None:
            return self.quarantine
        return [q for q in self.quarantine if (q["raw"] or {}).get("patient_id") == patient_id]

    def reasons(self, patient_id: str) -> list[str]:
        return sorted(q["reason"] for q in self.quarantined(patient_id))

    def explain(self, patient_id: str) -> str:
        """Everything about one patient, for assertion messages."""
        labs = [r for r in self.labs if r.get("patient_id") == patient_id]
        meds = [r for r in self.medications if r.get("patient_id") == patient_id]
        dxs = [r for r in self.diagnoses if r.get("patient_id") == patient_id]
        flags = self.flags.filter(pl.col("patient_id") == patient_id).select(
            "criterion", "value", "unit", "observed_at", "detail"
        )
        return (
            f"\npatient {patient_id}\n  labs: {labs}"
            + (f"\n  medications: {meds}" if meds else "")
            + (f"\n  diagnoses: {dxs}" if dxs else "")
            + f"\n  flags: {flags.to_dicts()}"
            f"\n  quarantine: {[(q['reason'], q['raw']) for q in self.quarantined(patient_id)]}"
        )


def _extract_rows(
    patients: Iterable[Mapping[str, Any]],
    labs: Iterable[Mapping[str, Any]],
    medications: Iterable[Mapping[str, Any]] | None,
    diagnoses: Iterable[Mapping[str, Any]] | None,
    add_missing_patients: bool,
) -> tuple[list[dict], list[dict], list[dict] | None, list[dict] | None]:
    """The rows of each extract with their defaults filled in (patients, labs, medications,
    diagnoses; None for a kind not given), and a patient row for every id the others name."""
    lab_rows = [_lab_row(r) for r in labs]
    patient_rows = [_patient_row(r) for r in patients]
    med_rows = (
        None
        if medications is None
        else [_plain_row(r, MEDICATION_COLUMNS, "medication") for r in medications]
    )
    dx_rows = (
        None
        if diagnoses is None
        else [_plain_row(r, DIAGNOSIS_COLUMNS, "diagnosis") for r in diagnoses]
    )
    if add_missing_patients:
        known = {p["patient_id"] for p in patient_rows}
        for row in [*lab_rows, *(med_rows or []), *(dx_rows or [])]:
            pid = row.get("patient_id")
            if pid is not None and pid not in known:
                patient_rows.append(_patient_row({"patient_id": pid}))
                known.add(pid)
    return patient_rows, lab_rows, med_rows, dx_rows


def screen(
    patients: Iterable[Mapping[str, Any]] = (),
    labs: Iterable[Mapping[str, Any]] = (),
    *,
    workdir: Path,
    as_of: date = AS_OF,
    add_missing_patients: bool = True,
    medications: Iterable[Mapping[str, Any]] | None = None,
    diagnoses: Iterable[Mapping[str, Any]] | None = None,
    rules: str | Path | None = None,
) -> ScreeningResult:
    """Screen these rows once, in an in-memory database, as a night's extracts would be.

    The rows are presented to the real staging SQL as the files patients.csv, labs.csv,
    medications.csv and diagnoses.csv would be (every cell text, an empty cell missing;
    pipeline.read.ingest.present_rows), then the runner's own validate and screen stages run
    and the worklist and resolved marts are built; nothing is written or published. Reading
    files (headers, malformed lines, compression, Parquet) is tested in tests/integration.
    ``rules`` is passed on as ``--rules`` is.
    """
    from pipeline.facts import Read
    from pipeline.publish import outputs, render
    from pipeline.read.discover import KINDS
    from pipeline.read.ingest import QUARANTINE_DDL, load_kind, present_rows
    from pipeline.runner import RunConfig, ScreeningRun

    patient_rows, lab_rows, med_rows, dx_rows = _extract_rows(
        patients, labs, medications, diagnoses, add_missing_patients
    )
    # prepare() wants a patients and a labs file the first night: header-only ones, never read
    extracts = workdir / "extracts"
    extracts.mkdir(parents=True, exist_ok=True)
    write_csv(extracts / "patients.csv", PATIENT_COLUMNS, [])
    write_csv(extracts / "labs.csv", LAB_COLUMNS, [])
    run = ScreeningRun(
        RunConfig(
            extracts=extracts, out=workdir / "out", as_of=as_of, db=Path(":memory:"), rules=rules
        )
    )
    try:
        run.prepare()
        con = run.con
        con.execute(QUARANTINE_DDL)
        tables = {
            "patients": (PATIENT_COLUMNS, patient_rows),
            "labs": (LAB_COLUMNS, lab_rows),
            "medications": (MEDICATION_COLUMNS, med_rows),
            "diagnoses": (DIAGNOSIS_COLUMNS, dx_rows),
        }
        loaded = []
        for file_id, kind in enumerate(KINDS, start=1):
            columns, rows = tables.get(kind, ((), None))
            if rows is None:
                load_kind(con, kind, [], file_id, {})
                continue
            frame = _text_frame(columns, rows)
            con.register(f"_rows_{kind}", frame)
            con.execute(f"CREATE TEMP TABLE _harness_{kind} AS SELECT * FROM _rows_{kind}")
            con.unregister(f"_rows_{kind}")
            loaded.append(present_rows(con, kind, f"_harness_{kind}", f"{kind}.csv", file_id))
        run.read = Read(tuple(loaded))
        run.validate()
        run.screen()
        run.models.build(["worklist", "resolved"])
        flags = pl.from_arrow(
            con.sql(outputs.FLAGS_SQL, params=[run.rules.version, run.run_id]).to_arrow_table()
        )
        quarantine_frame = render.neutral_frame(
            pl.from_arrow(con.sql(outputs.QUARANTINE_SQL).to_arrow_table())
        )
        stamp = outputs.Stamp(run.rules.version, run.run_id, as_of)
        worklist = render.neutral_frame(
            outputs.worklist_frame(con, stamp, run.rules.spec.identifiers)
        )
    finally:
        run.close()
    quarantine = list(csv.DictReader(io.StringIO(quarantine_frame.write_csv(), newline="")))
    for q in quarantine:
        try:
            q["raw"] = json.loads(q["raw_row"])
        except (json.JSONDecodeError, TypeError):
            q["raw"] = None  # a malformed CSV line is kept as text
    return ScreeningResult(
        flags=flags,
        quarantine=quarantine,
        worklist_csv=worklist.write_csv(),
        labs=lab_rows,
        medications=med_rows or [],
        diagnoses=dx_rows or [],
    )


def _text_frame(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Rows as a CSV reader gives them: every cell text, an empty one missing (NULL)."""

    def cell(value: Any) -> str | None:
        text = None if value is None else str(value)
        return text or None

    return pl.DataFrame(
        {c: [cell(r.get(c)) for r in rows] for c in columns},
        schema={c: pl.String for c in columns},
    )


def screen_through_files(
    patients: Iterable[Mapping[str, Any]] = (),
    labs: Iterable[Mapping[str, Any]] = (),
    *,
    workdir: Path,
    as_of: date = AS_OF,
    add_missing_patients: bool = True,
    medications: Iterable[Mapping[str, Any]] | None = None,
    diagnoses: Iterable[Mapping[str, Any]] | None = None,
    rules: str | Path | None = None,
) -> ScreeningResult:
    """Write the extracts into ``workdir/extracts``, run the whole screening once, with its
    database in ``workdir/b12screen.duckdb`` and its outputs published to ``workdir/out``: for
    tests of what a run leaves in the registry (measures_history, backfills). The result's
    worklist is the published worklist.csv.

    patients.csv and labs.csv are always written; medications.csv and diagnoses.csv when
    ``medications`` / ``diagnoses`` are given. ``rules`` is passed on as ``--rules`` is.
    """
    from pipeline.runner import RunConfig, run_screening

    patient_rows, lab_rows, med_rows, dx_rows = _extract_rows(
        patients, labs, medications, diagnoses, add_missing_patients
    )
    extracts, out = workdir / "extracts", workdir / "out"
    extracts.mkdir(parents=True, exist_ok=True)
    write_csv(extracts / "patients.csv", PATIENT_COLUMNS, patient_rows)
    write_csv(extracts / "labs.csv", LAB_COLUMNS, lab_rows)
    if med_rows is not None:
        write_csv(extracts / "medications.csv", MEDICATION_COLUMNS, med_rows)
    if dx_rows is not None:
        write_csv(extracts / "diagnoses.csv", DIAGNOSIS_COLUMNS, dx_rows)
    run_screening(
        RunConfig(
            extracts=extracts,
            out=out,
            as_of=as_of,
            db=workdir / "b12screen.duckdb",
            rules=rules,
        )
    )
    flags = pl.read_parquet(out / "flags.parquet")
    with (out / "quarantine.csv").open(encoding="utf-8", newline="") as fh:
        quarantine = list(csv.DictReader(fh))
    for q in quarantine:
        try:
            q["raw"] = json.loads(q["raw_row"])
        except (json.JSONDecodeError, TypeError):
            q["raw"] = None  # a malformed CSV line is kept as text
    return ScreeningResult(
        flags=flags,
        quarantine=quarantine,
        worklist_csv=(out / "worklist.csv").read_text(encoding="utf-8"),
        out=out,
        labs=lab_rows,
        medications=med_rows or [],
        diagnoses=dx_rows or [],
    )


# -- the staging SQL alone, in memory --------------------------------------------------------
class StagingDB:
    """An in-memory DuckDB prepared by the runner itself (macros, rules, reference tables).

    ``stage(rows)`` loads lab rows as ``raw_labs`` (all text, as the CSV reader gives them)
    and returns the rows of the real sql/staging/stg_labs.sql; ``sql(...)`` runs any query
    (the comparison macros and getvariable('criterion.param') are there).
    """

    def __init__(self, workdir: Path, as_of: date = AS_OF) -> None:
        from pipeline.runner import RunConfig, ScreeningRun

        extracts = workdir / "extracts"
        extracts.mkdir(parents=True, exist_ok=True)
        write_csv(extracts / "patients.csv", PATIENT_COLUMNS, [])
        write_csv(extracts / "labs.csv", LAB_COLUMNS, [])
        self._run = ScreeningRun(
            RunConfig(extracts=extracts, out=workdir / "out", as_of=as_of, db=Path(":memory:"))
        )
        self._run.prepare()
        self._as_of = as_of
        self.con = self._run.con
        self.con.execute("CREATE OR REPLACE TEMP TABLE patients (patient_id VARCHAR)")

    def stage(self, rows: Sequence[Mapping[str, Any]], extra: str = "") -> list[dict[str, Any]]:
        """The staged rows, in input order; ``extra`` adds select expressions over them."""
        from pipeline.resources import read_sql
        from pipeline.store.merge import CODING_COLUMNS

        labs = [_lab_row(r) for r in rows]
        frame = pl.DataFrame(
            {
                "_rid": list(range(1, len(labs) + 1)),
                "source_file": ["labs.csv"] * len(labs),
                "row_number": list(range(1, len(labs) + 1)),
                **{c: [None if r.get(c) is None else str(r[c]) for r in labs] for c in LAB_COLUMNS},
            },
            schema={
                "_rid": pl.Int64,
                "source_file": pl.String,
                "row_number": pl.Int64,
                **{c: pl.String for c in LAB_COLUMNS},
            },
        )
        self.con.register("_harness_rows", frame)
        try:
            self.con.execute("CREATE OR REPLACE TEMP TABLE raw_labs AS SELECT * FROM _harness_rows")
        finally:
            self.con.unregister("_harness_rows")
        self.con.execute(
            "INSERT INTO patients SELECT DISTINCT patient_id FROM raw_labs "
            "WHERE patient_id IS NOT NULL AND patient_id NOT IN (SELECT patient_id FROM patients)"
        )
        # as stage_and_validate does: the codings of the spellings first, then the rows; each
        # row is given back with its coding's columns, as lab_results shows a stored row
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE staged_lab_codings AS "
            + read_sql("staging/stg_lab_codings.sql")
        )
        coding = ", ".join(c for c in CODING_COLUMNS if c != "analyte")
        more = f", {extra}" if extra else ""
        return self.sql(
            f"SELECT *{more} FROM ({read_sql('staging/stg_labs.sql')}) "
            f"LEFT JOIN (SELECT DISTINCT coding_id, {coding} FROM staged_lab_codings) "
            "USING (coding_id) ORDER BY _rid"
        )

    def sql(self, query: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        cur = self.con.execute(query, list(params or []))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def close(self) -> None:
        self.con.execute("ROLLBACK")
        self._run.close()


class CriteriaDB(StagingDB):
    """A :class:`StagingDB` with what the criteria read: the kept tables (empty, made by the
    runner's own ingest and validate stages over empty extracts), the int_* tables and macros
    and an empty ``run_flags`` (``pipeline.screening.criteria.build_inputs``). Binding or
    DESCRIBE-ing a criterion's SQL works; running it gives no rows until rows are inserted.
    """

    def __init__(self, workdir: Path, as_of: date = AS_OF) -> None:
        from pipeline.rules import load_rules
        from pipeline.screening.criteria import build_inputs
        from pipeline.screening.models import ModelRun

        super().__init__(workdir, as_of)
        self.con.execute("DROP TABLE temp.patients")  # the kept patients table is made below
        self._run.ingest()
        self._run.validate()
        self.refresh_state()
        self._models = ModelRun(self.con, load_rules().criteria_order)
        build_inputs(self._models)

    def insert_labs(self, select: str, params: Sequence[Any] | None = None) -> None:
        """Put rows straight into the kept lab results: ``select`` names columns of lab_results
        (any of them); they are stored as a run stores them, coded (pipeline/store/merge.py)."""
        from pipeline.store.merge import insert_coded

        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE _harness_labs AS {select}", list(params or [])
        )
        insert_coded(self.con, "_harness_labs")
        self.con.execute("DROP TABLE _harness_labs")

    def refresh_state(self) -> None:
        """After rows are put straight into lab_results: bring the kept lab state and profile
        (pipeline/store/state.py, profile.py) up to date with them, as a run's screen stage
        does, and build the intermediate tables again."""
        from pipeline.store import profile, state

        state.refresh(self.con, self._as_of, reread="SELECT patient_id FROM lab_results")
        profile.refresh(self.con)
        if hasattr(self, "_models"):
            from pipeline.screening.criteria import build_inputs

            self._models.built.clear()
            build_inputs(self._models)
