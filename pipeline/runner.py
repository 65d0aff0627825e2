"""One screening run, stage by stage; the CLI and the Prefect flow both drive this.

    run = ScreeningRun(RunConfig(...))
    run.prepare()      # rules checked, extracts found and fingerprinted, database opened
    run.ingest()       # files -> raw_* tables (DuckDB readers)
    run.validate()     # staging SQL + pandera -> valid tables and quarantine
    run.screen()       # criteria SQL -> run_flags
    run.build_outputs()  # every output written into a hidden folder beside the old ones
    run.publish()      # database committed, outputs moved into place

All database work of a run is one transaction: a run that fails anywhere rolls back, leaves
the previous outputs untouched, and is recorded as failed in the ``runs`` table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import tempfile
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl

from pipeline import __version__, faults, registry, shortage
from pipeline.errors import (
    B12ScreenError,
    ExtractsError,
    OutputError,
    ResourceError,
    UsageError,
)
from pipeline.facts import (
    MergeCounts,
    Prepared,
    Read,
    Screened,
    Validated,
    ValidationResult,
    frozen_map,
)
from pipeline.mappings import TABLES as MAPPING_TABLES
from pipeline.mappings import shipped_label
from pipeline.progress import Progress
from pipeline.publish import outputs, switch
from pipeline.read.adapters import (
    FormatExtracts,
    discover_format,
    load_format,
    read_again,
    required_kinds,
)
from pipeline.read.discover import KINDS, Extracts
from pipeline.read.ingest import load_extracts
from pipeline.reports import audit, charts
from pipeline.resources import data_dir, read_sql
from pipeline.rules import Rules, apply_rules, load_rules
from pipeline.screening.criteria import load_macros, screen
from pipeline.screening.measures import compute_measures
from pipeline.screening.models import ModelRun
from pipeline.sqltext import literal, literal_files, memory_setting, path_literal
from pipeline.store import profile, state
from pipeline.store.merge import KEPT, upgrade_store
from pipeline.store.validate import stage_validate_merge

log = logging.getLogger("b12screen")

STAGES = 6
RUN_LOG = "run.log"  # the published run's own log (stage counts and timings), beside its outputs


def failure_log_path(db: Path, run_id: str) -> Path:
    """Where a failed run's log goes: ``<db>.logs/<run id>.log``, beside the database."""
    db = Path(db)
    return db.with_name(db.name + ".logs") / f"{run_id}.log"


@dataclass
class RunConfig:
    """One run. ``extracts=None`` screens what the database already holds (a backfill)."""

    extracts: Path | None
    out: Path
    as_of: date = field(default_factory=date.today)
    db: Path = Path("b12screen.duckdb")
    rules: str | Path | None = None
    progress: bool | None = False
    # DuckDB's memory ceiling; beyond it DuckDB spills to a folder beside the database. Without
    # one DuckDB may take 80% of RAM (a 50M-row run peaked at 15 GiB; with 3GB at 4.4 GiB).
    memory_limit: str | None = "3GB"
    # canonical, omop, fhir, synthea, or auto (recognised by the files): contract section 2b
    input_format: str = "auto"
    # Rows of a night staged, validated and merged at once (pipeline/store/validate.py); None:
    # as many as the memory limit holds. A larger night goes in batches of files.
    staging_batch_rows: int | None = None

    def __post_init__(self) -> None:
        self.extracts = Path(self.extracts) if self.extracts is not None else None
        self.out = Path(self.out)
        self.db = Path(self.db)
        if self.memory_limit is not None:  # None: DuckDB's own default; "" is a mistake
            try:
                self.memory_limit = memory_setting(self.memory_limit)
            except ValueError as exc:
                raise UsageError(f"--memory-limit: {exc}") from None


@dataclass
class RunResult:
    run_id: str
    out: Path
    record: dict


class ScreeningRun:
    """The stages of one run. Each stage records what it found as one immutable fact
    (pipeline/facts.py) that the later stages read: ``prepared``, ``read``, ``validated``,
    ``screened``. The DuckDB connection and the building folder are the run's resources."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
        self.started_at = datetime.now(UTC).replace(tzinfo=None)
        self.progress = Progress(config.progress, total=STAGES)
        self.rules: Rules | None = None  # set first, so a failed run still records its rules
        self.con: duckdb.DuckDBPyConnection | None = None
        self.staging_dir: Path | None = None
        self._committed = False  # after the COMMIT a failure must not undo the registry
        self._held = contextlib.ExitStack()  # output lock, file links: from prepare to close
        self.prepared: Prepared | None = None
        self.read: Read | None = None
        self.validated: Validated | None = None
        self.screened: Screened | None = None
        self.models: ModelRun | None = None  # the SQL models built on this run's connection
        self.lab_state: state.StateRefresh | None = None  # what the screen stage kept
        self.lab_profile = ""  # what the screen stage did with the kept lab profile
        self.record: dict = {}
        self.failure_log: Path | None = None  # written by fail(): stage lines and traceback
        self._read_again: dict[str, str] = {}  # file ingested before: the look-up that changed

    @property
    def validation(self) -> Mapping[str, ValidationResult]:
        return self.validated.validation if self.validated else {}

    # -- stages ------------------------------------------------------------------------------
    def prepare(self) -> Prepared:
        with self._resource_faults(), self.progress.stage("prepare", "checking rules and extracts"):
            self.rules = load_rules(self.config.rules)  # fails before any data is read
            found = (
                discover_format(self.config.extracts, self.config.input_format)
                if self.config.extracts is not None
                else FormatExtracts(Path("."), (), ())
            )
            self._held.enter_context(switch.holding(self.config.out))
            self._open_database()
            con = self.con
            con.execute("SET TimeZone = 'UTC'")
            registry.ensure_registry(con)
            if self.config.memory_limit:  # DuckDB spills there: a failure here is recorded
                self._check_spill_folder(shortage.spill_folder(self.config.db))
            self._repair_publish()
            self._mark_running()
            con.execute("BEGIN TRANSACTION")
            upgrade_store(con)  # a database of an earlier version: its keys, in this transaction
            seen = {r[0] for r in con.execute("SELECT sha256 FROM ingested_files").fetchall()}
            # a file whose content was ingested before (or appears twice tonight) is skipped,
            # unless a look-up it is read with (DEATH, CONCEPT, Medication) changed since
            again = read_again(found, _last_lookups(con))
            skipped = []
            for f in found.files:
                if f.sha256 in seen and f.path not in again:
                    skipped.append(f)
                seen.add(f.sha256)
            self._read_again = {
                f.name: again[f.path] for f in found.files if f.path in again and f not in skipped
            }
            extracts = dataclasses.replace(
                found, files=tuple(f for f in found.files if f not in skipped)
            )
            self._check_required_kinds(extracts)
            con.execute('SET VARIABLE "run.as_of" = ?::DATE', [self.config.as_of])
            con.execute('SET VARIABLE "run.id" = ?', [self.run_id])
            load_macros(con)
            apply_rules(con, self.rules)
            self._load_reference_tables()
            self.prepared = Prepared(
                run_id=self.run_id,
                as_of=self.config.as_of,
                started_at=self.started_at,
                rules=self.rules,
                extracts_folder=self.config.extracts,
                extracts=extracts,
                skipped=tuple(skipped),
            )
            if found.chosen:
                self.progress.note(found.chosen)
            self.progress.note(
                f"run {self.run_id}: {len(extracts.files)} new input file(s), "
                f"{len(skipped)} already ingested; rules {self.rules.version}"
            )
        faults.point("after-prepare")
        return self.prepared

    def ingest(self) -> Read:
        with (
            self._resource_faults(),
            self.progress.stage("ingest", "reading new extract files into DuckDB"),
        ):
            first_id = self.con.execute("SELECT count(*) + 1 FROM ingested_files").fetchone()[0]
            extracts = self.prepared.extracts
            lookups = getattr(extracts, "lookups", ())
            paths = [f.path for f in (*extracts.files, *lookups)]
            # the raw views read the files through these links until the run ends (close)
            sources = self._held.enter_context(literal_files(paths))
            readable = dict(zip(paths, sources, strict=True))
            fmt = getattr(extracts, "format", "canonical")
            if fmt == "canonical":
                loaded = load_extracts(self.con, extracts, readable, first_id)
                self.read = Read(tuple(loaded))
            else:
                got = load_format(
                    self.con, extracts, readable, first_id, self.rules.spec.identifiers
                )
                loaded = list(got.loaded)
                self.read = Read(got.loaded, got.rows_by_kind, fmt, got.counts)
                for f in lookups:
                    self.progress.note(f"{f.name}: read as a look-up table (every run)")
                for kind, item, n in got.counts:
                    self.progress.note(f"{fmt} {kind}: {item}: {n:,}")
            for item in loaded:
                mixed = ", mixed line endings read as LF" if item.line_endings_normalised else ""
                self.progress.note(f"{item.file.name}: {item.rows_read:,} rows{mixed}")
            for f in self.prepared.skipped:
                self.progress.note(f"{f.name}: already ingested, skipped")
            for name, lookup in self._read_again.items():
                self.progress.note(f"{name}: read again, {lookup} is new since the last run")
            for name, why in self.prepared.extracts.ignored_reasons.items():
                self.progress.note(f"{name}: not read, {why}")
        faults.point("after-ingest")
        return self.read

    def validate(self) -> Validated:
        with (
            self._resource_faults(),
            self.progress.stage("validate", "validating (pandera), quarantining, merging"),
        ):
            validation: dict[str, ValidationResult] = {}
            merged: dict[str, MergeCounts] = {}
            for kind in KINDS:  # patients first: the others check their patient_id against it
                files = (
                    [i for i in self.read.loaded if i.file.kind == kind]
                    if self.read.rows_by_kind is None
                    else None
                )
                result, m = stage_validate_merge(
                    self.con,
                    kind,
                    self.config.as_of,
                    files,
                    rows_read=self.read.rows_of(kind),
                    identifiers=self.rules.spec.identifiers.keys,
                    batch_rows=self.config.staging_batch_rows,
                    note=self.progress.note,
                    scratch_dir=self._scratch_dir(),
                )
                validation[kind] = result
                merged[kind] = m
                self.progress.note(
                    f"{kind}: {result.rows_quarantined:,} of {result.rows_checked:,} quarantined; "
                    f"{m.new:,} new, {m.resent:,} re-sent, {m.corrected:,} corrected"
                )
            self.validated = Validated(frozen_map(validation), frozen_map(merged))
        faults.point("after-validate")
        return self.validated

    def screen(self) -> Screened:
        with (
            self._resource_faults(),
            self.progress.stage("screen", "applying the criteria and the care-process measures"),
        ):
            charts.preload()  # the audit's charts need matplotlib; DuckDB screens meanwhile
            self.lab_state = state.refresh(
                self.con, self.config.as_of, scratch_dir=self._scratch_dir()
            )  # what criteria read
            self.progress.note(self.lab_state.note())
            self.lab_profile = profile.refresh(self.con)  # what the audit's lab tables read
            self.progress.note(f"lab profile {self.lab_profile}")
            self.models = ModelRun(self.con, self.rules.criteria_order)
            counts = screen(self.models)
            measures = compute_measures(self.models, self.rules)
            self.screened = Screened(frozen_map(counts), tuple(frozen_map(m) for m in measures))
            met = sum(1 for n in counts.values() if n)
            self.progress.note(
                f"{len(counts)} criteria applied ({met} met by at least one patient), "
                f"{len(measures)} care-process measures"
            )
        faults.point("after-screen")
        return self.screened

    def build_outputs(self) -> None:
        with self._resource_faults(), self.progress.stage("outputs", "writing outputs aside"):
            self._prepare_output_folder()
            self._record_history()
            self.record = outputs.build_record(
                self.con, self.prepared, self.read, self.validated, self.screened
            )
            self.record["input_format"] = _format_record(
                self.con, self.prepared.extracts, self.read, self.rules
            )
            self.record["input_format"]["read_again"] = [
                {"file": name, "because": f"{lookup} is new since the last run"}
                for name, lookup in self._read_again.items()
            ]
            self.record["lab_state"] = dataclasses.asdict(self.lab_state)
            self.record["lab_profile"] = self.lab_profile
            if self.read.rows_by_kind is not None:  # a FHIR Bundle holds rows of every kind
                rows = self.record["counts"]["rows_read"]
                self.record["counts"]["rows_read"] = {k: self.read.rows_of(k) for k in rows}
            snapshot = audit.collect(self.con, self.rules, self.screened)
            audit.record(self.con, self.run_id, self.config.as_of, snapshot, self.rules.version)
            # registered now (same transaction) so the audit reads this run like any other
            self._register("succeeded", None)
            outputs.write_all(self.con, self.prepared, self.staging_dir)
            worklist = self.record["counts"]["worklist"]
            by_priority = ", ".join(f"{n} {p}" for p, n in worklist.items() if p != "total")
            self.progress.note(f"worklist: {worklist['total']} patients ({by_priority})")
        faults.point("after-outputs")

    def publish(self) -> RunResult:
        with self._resource_faults(), self.progress.stage("publish", "committing and publishing"):
            self.record["finished_at"] = datetime.now(UTC).replace(tzinfo=None).isoformat()
            self.record["timings_s"] = dict(self.progress.timings)
            outputs.write_run_json(self.record, self.staging_dir)
            self._register("succeeded", None)
            self.progress.note(f"publishing to {self.config.out / 'runs' / self.run_id}")
            self._write_log(self.staging_dir / RUN_LOG)
            outputs.check_complete(self.staging_dir)
            self.con.execute("COMMIT")
            self._committed = True
            faults.point("after-commit")
            try:
                switch.publish(self.staging_dir, self.config.out)
            except OSError as exc:
                raise OutputError(
                    f"run {self.run_id} committed, but its outputs could not be put in place in "
                    f"{self.config.out} ({exc.strerror}); the next run publishes them"
                ) from None
            self.staging_dir = None
        self.close()
        return RunResult(self.run_id, self.config.out, self.record)

    def fail(self, exc: BaseException) -> None:
        """Roll back, keep the previous outputs, and record the failed run (best effort).

        After the COMMIT (only putting the outputs in place can fail then) nothing is undone:
        the registry says succeeded, and the built folder stays for the next run to publish."""
        if not self._committed:
            if self.staging_dir is not None:
                shutil.rmtree(self.staging_dir, ignore_errors=True)
            if self.con is not None:
                with contextlib.suppress(duckdb.Error):
                    self.con.execute("ROLLBACK")
                try:
                    reason = str(exc) if isinstance(exc, B12ScreenError) else type(exc).__name__
                    self._register("failed", reason)
                except duckdb.Error:
                    # in the run's log, not on stderr: the error stays one line there
                    self.progress.record(
                        f"run {self.run_id}: could not record the failure in the registry"
                    )
        self.failure_log = self._write_failure_log(exc)
        self.close()

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
        self._held.close()

    @contextlib.contextmanager
    def _resource_faults(self) -> Iterator[None]:
        """A full disk, an unwritable folder or too little memory met in a stage: the one-line
        error of pipeline/shortage.py (exit 5 or 7), not a traceback or a blamed input file."""
        try:
            yield
        except B12ScreenError:
            raise
        except Exception as exc:
            error = shortage.translate(exc, self._places(), self.progress.current)
            if error is None:
                raise
            raise error from None

    def _places(self) -> shortage.Places:
        db = self.config.db
        return shortage.Places(
            self.config.out, db, shortage.spill_folder(db), self.config.memory_limit
        )

    # -- the run's own log ---------------------------------------------------------------------
    def _write_log(self, path: Path, extra: list[str] = ()) -> Path | None:
        text = "\n".join([*self.progress.lines, *extra]) + "\n"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            log.warning("run %s: log file %s not written (%s)", self.run_id, path, exc.strerror)
            return None
        return path

    def _write_failure_log(self, exc: BaseException) -> Path | None:
        """``<db>.logs/<run id>.log``: the stage lines, the cause and the full traceback.

        Beside the database, not in the output folder: a failed run publishes nothing and
        leaves the output folder exactly as it was. Like the output folder (and unlike the
        Prefect log or an alert), this file may hold what an exception carried."""
        stage = self.progress.current or "run"
        cause = str(exc) if isinstance(exc, B12ScreenError) else type(exc).__name__
        lines = [
            f"run {self.run_id} failed in the {stage} stage: {cause}",
            "",
            *"".join(traceback.format_exception(exc)).rstrip().splitlines(),
        ]
        return self._write_log(failure_log_path(self.config.db, self.run_id), lines)

    # -- helpers -----------------------------------------------------------------------------
    def _open_database(self) -> None:
        db = self.config.db
        if db.parent and not db.parent.exists():
            db.parent.mkdir(parents=True, exist_ok=True)
        self.con = registry.connect(db)
        # DuckDB's own progress bar only where a person watches (quiet otherwise, as under a scheduler)
        self.con.execute(f"SET enable_progress_bar = {str(bool(self.progress.enabled)).lower()}")
        if self.config.memory_limit:
            spill = shortage.spill_folder(db)
            self.con.execute(f"SET memory_limit = {literal(self.config.memory_limit)}")
            self.con.execute(f"SET temp_directory = {path_literal(spill)}")

    def _scratch_dir(self) -> Path | None:
        """Where a large night's staged batches are written: beside the database."""
        db = self.config.db
        return None if str(db) == ":memory:" else db.resolve().parent

    def _check_spill_folder(self, spill: Path) -> None:
        """The spill folder can be made and written: found now, not when DuckDB first spills
        hours into a large night."""
        try:
            if spill.is_dir():
                with tempfile.TemporaryFile(dir=spill):
                    pass
            else:
                spill.mkdir()
                spill.rmdir()
        except OSError as exc:
            raise ResourceError(
                f"cannot use the spill folder {spill} beside the database: {exc.strerror}; "
                "make it a writable folder (or remove what is in its place)"
            ) from None

    def _load_reference_tables(self) -> None:
        """The code lists and mappings in data/, as temp tables keyed the way staging keys rows,
        with the site's own mapping files (the rules profile's ``[mappings]``) laid over them:
        a site row replaces the shipped rows of its key, a new key extends the table, a row
        with no target unmaps its key. ``mapping`` names the file each row came from."""
        drug_key = (
            "CASE code_system"
            " WHEN 'name' THEN array_to_string(list_filter(string_split_regex(lower(code), '[^\\p{L}\\p{N}]+'), lambda x: x <> ''), ' ')"
            " WHEN 'atc' THEN upper(trim(code)) ELSE trim(code) END"
        )
        icd_key = "upper(replace(trim(code), '.', ''))"
        tables = {
            # file: (table, columns kept, key of a file row, key of a table row, target column)
            "lab_units": (
                "ref_lab_units",
                "analyte, unit_key, factor_to_canonical::DOUBLE AS factor_to_canonical",
                None,
                None,
                None,
            ),
            "lab_test_names": (
                "ref_lab_test_names",
                "text_key(test_name_key) AS test_name_key, analyte",
                "text_key(test_name_key)",
                "test_name_key",
                "analyte",
            ),
            "drug_codes": (
                "ref_drug_codes",
                f"drug_group, code_system, {drug_key} AS code_key",
                f"code_system || '|' || {drug_key}",
                "code_system || '|' || code_key",
                "drug_group",
            ),
            "diagnosis_codes": (
                "ref_diagnosis_codes",
                "condition, code",
                icd_key,
                icd_key,
                "condition",
            ),
            "diagnosis_codes_snomed": (
                "ref_diagnosis_codes_snomed",
                "condition, trim(code) AS code",
                "trim(code)",
                "code",
                "condition",
            ),
        }
        site = {m.table: m for m in (self.rules.mappings if self.rules else ())}
        for name, (table, select, file_key, table_key, target) in tables.items():
            with literal_files([data_dir() / f"{name}.csv"]) as (path,):
                self.con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT DISTINCT {select}, "
                    f"{literal(shipped_label(name))} AS mapping "
                    f"FROM read_csv({path}, header = true, all_varchar = true)"
                )
            mapping = site.get(name)
            if mapping is None:
                continue
            columns = MAPPING_TABLES[name].columns
            frame = pl.DataFrame(
                [[row[c] for c in columns] for row in mapping.rows],
                schema={c: pl.String for c in columns},
                orient="row",
            )
            self.con.register("_site_mapping", frame)
            try:
                self.con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {table} AS "
                    f"SELECT * FROM {table} WHERE {table_key} NOT IN "
                    f"(SELECT {file_key} FROM _site_mapping) "
                    f"UNION ALL SELECT DISTINCT {select}, {literal(mapping.label)} AS mapping "
                    f"FROM _site_mapping WHERE {target} <> ''"
                )
            finally:
                self.con.unregister("_site_mapping")

    def _prepare_output_folder(self) -> None:
        out = self.config.out
        try:
            out.mkdir(parents=True, exist_ok=True)
            self.staging_dir = switch.building_folder(out, self.run_id)
            self.staging_dir.mkdir()
        except OSError as exc:
            raise OutputError(f"cannot write to output folder {out}: {exc.strerror}") from None

    def _check_required_kinds(self, extracts: Extracts) -> None:
        """A database must have received patients and labs at least once."""
        for kind in required_kinds(getattr(extracts, "format", "canonical")):
            table = KEPT[kind][0]
            if extracts.of_kind(kind):
                continue
            exists = self.con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
            ).fetchone()[0]
            if not exists:
                where = self.config.extracts or "the database"
                raise ExtractsError(
                    f"no {kind} file in {where} and none ingested before "
                    f"(expected {kind}*.csv, {kind}*.csv.gz or {kind}*.parquet)"
                )

    def _repair_publish(self) -> None:
        """Finish the publish of a run killed after its commit; drop half-built folders."""

        def committed(run_id: str) -> bool:
            row = self.con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchall()
            return bool(row) and row[0][0] == "succeeded"

        try:
            published = switch.repair(self.config.out, committed)
        except OSError as exc:
            raise OutputError(
                f"cannot repair output folder {self.config.out}: {exc.strerror}"
            ) from None
        for run_id in published:
            message = (
                f"run {run_id} had committed but was stopped before its outputs were in place: "
                "published them now"
            )
            log.warning("%s", message)
            self.progress.record(message, logged=True)

    def _mark_running(self) -> None:
        """Record this run as running, outside its transaction, so a run that is killed still
        leaves its row; a row still running when the next run holds the database was such a
        run, and is marked interrupted. The run's own end replaces its row."""
        self.con.execute(
            "UPDATE runs SET status = 'interrupted', error = ? WHERE status = 'running'",
            [f"stopped before it finished (no end was recorded); found by run {self.run_id}"],
        )
        self.con.execute(
            "INSERT OR REPLACE INTO runs (run_id, as_of, started_at, status, code_version, "
            "rules_version, rules_sha256) VALUES (?, ?, ?, 'running', ?, ?, ?)",
            [
                self.run_id,
                self.config.as_of,
                self.started_at,
                __version__,
                self.rules.version,
                self.rules.sha256,
            ],
        )

    def _record_history(self) -> None:
        con = self.con
        as_of = self.config.as_of.isoformat()
        con.execute(
            f"""INSERT INTO quarantine_log SELECT '{self.run_id}', DATE '{as_of}', kind,
                source_file, row_number, reason, raw_row FROM quarantine"""
        )
        quarantined = dict(
            con.execute("SELECT source_file, count(*) FROM quarantine GROUP BY 1").fetchall()
        )
        for item in self.read.loaded:
            con.execute(
                # a file read again (a look-up it is read with changed) replaces its row
                "INSERT OR REPLACE INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    item.file.sha256,
                    item.file.kind,
                    item.file.name,
                    item.file.size,
                    self.run_id,
                    self.config.as_of,
                    item.rows_read,
                    int(quarantined.get(item.file.name, 0)),
                ],
            )
        con.execute(
            f"""INSERT INTO flags_history SELECT '{self.run_id}', DATE '{as_of}', patient_id, criterion,
                value, unit, observed_at, detail, source_file, row_number, ? FROM run_flags""",
            [self.rules.version],
        )
        self.models.build(["worklist", "resolved"])
        con.execute(
            f"""INSERT INTO worklist_history SELECT '{self.run_id}', DATE '{as_of}', patient_id,
                priority, criteria, status FROM run_worklist"""
        )

    def _register(self, status: str, error: str | None) -> None:
        self.con.execute(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                self.run_id,
                self.config.as_of,
                self.started_at,
                datetime.now(UTC).replace(tzinfo=None),
                status,
                error,
                __version__,
                self.rules.version if self.rules else None,
                self.rules.sha256 if self.rules else None,
                json.dumps(self.record or {"run_id": self.run_id, "status": status}, default=str),
            ],
        )


def _last_lookups(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The SHA-256 of the look-up files (DEATH, CONCEPT, Medication ...) the last succeeded run
    read (its run.json ``input_format.lookup_files``; none before formats were recorded)."""
    rows = con.execute(
        "SELECT CAST(record AS VARCHAR) FROM runs WHERE status = 'succeeded' "
        "ORDER BY started_at DESC LIMIT 1"
    ).fetchall()
    if not rows or not rows[0][0]:
        return set()
    lookups = (json.loads(rows[0][0]).get("input_format") or {}).get("lookup_files", [])
    return {item["sha256"] for item in lookups}


def _format_record(
    con: duckdb.DuckDBPyConnection, extracts: Extracts, read: Read, rules: Rules | None = None
) -> dict:
    """run.json's ``input_format``: the format read, why (auto), the look-up tables read, the
    adapter's counts (what each mapping recognised, what was left out) and the stored valid rows
    each mapping table recognised (sql/adapters/common/recognised.sql: the rules' LOINC lists,
    data/<table>.csv, the site's own files)."""
    recognised = con.execute(read_sql("adapters/common/recognised.sql")).fetchall()
    return {
        "format": read.input_format,
        "chosen": getattr(extracts, "chosen", ""),
        "lookup_files": [
            {"file": f.name, "sha256": f.sha256} for f in getattr(extracts, "lookups", ())
        ],
        "counts": [{"kind": k, "item": item, "rows": n} for k, item, n in read.format_counts],
        "recognised": [{"kind": k, "mapping": m, "rows": int(n)} for k, m, n in recognised],
        # the site's own mapping files (rules profile [mappings]), also in the rules SHA-256
        "site_mappings": [
            {"table": m.table, "file": m.path.name, "sha256": m.sha256, "rows": len(m.rows)}
            for m in (rules.mappings if rules else ())
        ],
    }


def run_screening(
    config: RunConfig,
    on_failure: Callable[[ScreeningRun, BaseException], None] | None = None,
) -> RunResult:
    """Run every stage; on any failure roll back, keep old outputs, and re-raise.

    ``on_failure(run, error)`` is called after the rollback (the run's failure log is written
    by then), before the error is raised: the CLI sends its alert from there."""
    run = ScreeningRun(config)
    try:
        for stage in ("prepare", "ingest", "validate", "screen", "build_outputs"):
            getattr(run, stage)()
        return run.publish()
    except BaseException as exc:
        run.fail(exc)
        if on_failure is not None and isinstance(exc, Exception):
            on_failure(run, exc)
        raise
