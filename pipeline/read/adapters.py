"""Other input data models (contract section 2b): OMOP CDM, FHIR R4 and Synthea CSV.

Each format is a folder of SQL, ``sql/adapters/<format>/``, that presents the format's tables
as the canonical ``raw_patients``, ``raw_labs``, ``raw_medications`` and ``raw_diagnoses``
(every canonical column as text, plus ``_rid``, ``source_file`` and ``row_number``), so the
staging, the quarantine reasons, the criteria and the outputs are the same whatever the source
(the backend pattern of OpenSAFELY's ehrQL). Python only finds the files, opens them with
DuckDB's own readers (no loop over records) and runs the SQL:

* ``discover_format`` lists a folder as one format: which file is which source table, which
  files are read every night as look-up tables (OMOP CONCEPT, DEATH; FHIR Medication), and
  which are ignored and why.
* ``detect_format`` is ``--format auto``: it recognises the folder by its files and says why.
* ``load_format`` reads the files into ``src_<table>`` (OMOP, Synthea) or ``fhir_resources``
  (FHIR: one row per resource, each NDJSON line or Bundle entry, with its file and line), runs
  ``sql/adapters/<format>/<kind>.sql`` into ``raw_<kind>``, and ``counts.sql`` for the audit:
  what each mapping recognised and what was left out (FHIR entered-in-error, cancelled, draft).

A CSV line DuckDB cannot split, or an NDJSON line that is not JSON, is a quarantined row of its
file's kind, not a failed night. A file that cannot be read at all stops the run, by name.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from pipeline.errors import ExtractsError
from pipeline.facts import LoadedFile
from pipeline.read import newlines
from pipeline.read.discover import (
    KINDS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    TRANSIENT_ERRNOS,
    Extracts,
    InputFile,
    _left_out,
    discover,
    sha256_of,
)
from pipeline.read.ingest import (
    QUARANTINE_DDL,
    _header,
    as_read,
    load_kind,
    open_file,
    quarantine_malformed,
    reading,
)
from pipeline.resources import sql_dir
from pipeline.sqltext import ident, literal

if TYPE_CHECKING:
    from pipeline.rules import Identifiers

FORMATS = ("canonical", "omop", "fhir", "synthea")
CHOICES = (*FORMATS, "auto")
CLINICAL_KINDS = ("patients", "labs", "medications", "diagnoses")
# the patients adapters' map of the identifiers a source offers (lower-case key to text)
SOURCE_IDENTIFIERS = "_source_identifiers"
# the FHIR Medication resource an order's drug is looked up in (sql/adapters/fhir/medication_orders.sql)
MEDICATION_ID = "_medication_id"
_FILE_ID_STRIDE = 1_000_000_000_000  # as pipeline/read/ingest.py: rows per file id

# Each format's source tables: the kind a table presents (None: a look-up table read every
# night, never recorded as ingested), and the columns the adapter SQL reads (lower case; a
# column the file lacks is NULL). The first columns listed are required.
TABLES: dict[str, dict[str, tuple[str | None, tuple[str, ...], int]]] = {
    # table: (kind, columns, how many of the first columns are required)
    "omop": {
        "person": (
            "patients",
            (
                "person_id",
                "gender_concept_id",
                "year_of_birth",
                "month_of_birth",
                "day_of_birth",
                "birth_datetime",
                "care_site_id",
                "gender_source_value",
                "person_source_value",
            ),
            1,
        ),
        "measurement": (
            "labs",
            (
                "person_id",
                "measurement_id",
                "measurement_concept_id",
                "measurement_date",
                "measurement_datetime",
                "operator_concept_id",
                "value_as_number",
                "unit_concept_id",
                "range_low",
                "range_high",
                "measurement_source_value",
                "measurement_source_concept_id",
                "unit_source_value",
                "value_source_value",
            ),
            1,
        ),
        "drug_exposure": (
            "medications",
            (
                "person_id",
                "drug_exposure_id",
                "drug_concept_id",
                "drug_exposure_start_date",
                "drug_exposure_start_datetime",
                "drug_exposure_end_date",
                "drug_exposure_end_datetime",
                "verbatim_end_date",
                "days_supply",
                "refills",
                "route_concept_id",
                "drug_source_value",
                "drug_source_concept_id",
                "route_source_value",
            ),
            1,
        ),
        "condition_occurrence": (
            "diagnoses",
            (
                "person_id",
                "condition_occurrence_id",
                "condition_concept_id",
                "condition_start_date",
                "condition_start_datetime",
                "condition_source_value",
                "condition_source_concept_id",
            ),
            1,
        ),
        "death": (None, ("person_id", "death_date", "death_datetime"), 1),
        "concept": (
            None,
            ("concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_code"),
            1,
        ),
        "concept_ancestor": (
            None,
            ("ancestor_concept_id", "descendant_concept_id", "min_levels_of_separation"),
            2,
        ),
        "care_site": (None, ("care_site_id", "care_site_name", "care_site_source_value"), 1),
    },
    "synthea": {
        "patients": (
            "patients",
            (
                "id",
                "birthdate",
                "deathdate",
                "gender",
                "ssn",
                "drivers",
                "passport",
                "first",
                "last",
            ),
            2,
        ),
        "observations": (
            "labs",
            ("patient", "date", "category", "code", "description", "value", "units", "type"),
            2,
        ),
        "medications": ("medications", ("patient", "start", "stop", "code", "description"), 2),
        "conditions": (
            "diagnoses",
            ("patient", "start", "stop", "system", "code", "description"),
            2,
        ),
    },
}

# FHIR: the kind each resource type presents (None: a look-up read every night).
FHIR_TYPES: dict[str, str | None] = {
    "Patient": "patients",
    "Observation": "labs",
    "MedicationRequest": "medications",
    "MedicationStatement": "medications",
    "Condition": "diagnoses",
    "Medication": None,
}
# A look-up table changes what the files of other tables present (a DEATH row a PERSON's death
# date, a CONCEPT a code, a Medication a MedicationRequest's drug). When a look-up file's content
# is new since the last succeeded run, the files of the tables it feeds are read again, even
# if their own content was ingested before (merging by record key stores a re-sent row once).
LOOKUP_DEPENDENTS: dict[str, dict[str, tuple[str, ...]]] = {
    "omop": {
        "death": ("person",),
        "care_site": ("person",),
        "concept": ("measurement", "drug_exposure", "condition_occurrence"),
        "concept_ancestor": ("condition_occurrence",),
    },
    "fhir": {"Medication": ("MedicationRequest", "MedicationStatement", "Bundle")},
}
# FHIR: the explicit structure each resource type is read with, never inferred from the sample
# (sql/adapters/fhir/structures/<name>.json), presented as the relation fhir_<name>.
FHIR_STRUCTURES: dict[str, str] = {
    "Patient": "patient",
    "Observation": "observation",
    "MedicationRequest": "medication_order",
    "MedicationStatement": "medication_order",
    "Condition": "condition",
    "Medication": "medication",
}
# Adapters in two parts: the kind's adapter reads ``_adapted_<first part>``, the rows of its
# first part (sql/adapters/<format>/<first part>.sql), which gives one row per resource in the
# order read, so that the FHIR reader can read a file with it (_FUSED); the second part adds
# what needs a join (a join keeps no order). FHIR orders: the drug of the Medication resource
# an order references (the demo's 74k orders, one thread: 0.44 CPU s read so against 0.51 for
# the typed read and then the adapter in one; docs/benchmarks.md, session 15).
_FIRST_PARTS: dict[tuple[str, str], str] = {("fhir", "medications"): "medication_orders"}
# FHIR structures with an adapter (sql/adapters/fhir/<adapter>.sql, the kind's own or its first
# part) that gives one row per resource in the order read (only SELECT and WHERE, no join): an
# NDJSON file of one of these is read with that adapter in one statement (_read_ndjson_adapted)
_FUSED: dict[str, str] = {
    "observation": "labs",
    "condition": "diagnoses",
    "patient": "patients",
    "medication_order": "medication_orders",
}
FHIR_SUFFIXES = (".ndjson", ".ndjson.gz", ".json")
_RESOURCE_TYPE = re.compile(rb'"resourceType"\s*:\s*"([A-Za-z]+)"')
# the longest NDJSON line read (a Patient with a long narrative, a Bundle in one line)
_MAX_LINE_BYTES = 64 * 1024 * 1024
# read_json's default maximum_object_size, the smallest it takes: each of its threads reads
# twice this at a time, and it reads a file on size // this threads at most, so a file is read
# with it when no line is this long (newlines.lines_shorter_than), else with _MAX_LINE_BYTES
# (one thread for a file under 64 MB; docs/benchmarks.md, session 14)
_SHORT_LINE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class FormatExtracts(Extracts):
    """An extracts folder read as one format. ``files`` are the files that present rows (kind
    ``bundle`` for a FHIR Bundle, which may hold every kind); ``lookups`` are read every night
    and never recorded as ingested; ``tables`` names each file's source table."""

    format: str = "canonical"
    lookups: tuple[InputFile, ...] = ()
    tables: Mapping[Path, str] = field(default_factory=dict)
    chosen: str = ""  # why auto chose this format (one line), empty when given

    def of_kind(self, kind: str) -> list[InputFile]:
        return [
            f
            for f in self.files
            if f.kind == kind or (f.kind == "bundle" and kind in CLINICAL_KINDS)
        ]


def required_kinds(fmt: str) -> tuple[str, ...]:
    """Kinds a database must have received once: patients and labs for the canonical extracts;
    patients alone for the others (a FHIR export may hold no laboratory Observation)."""
    return ("patients", "labs") if fmt == "canonical" else ("patients",)


# -- recognising files ------------------------------------------------------------------------
def _first_bytes(path: Path, limit: int = 1 << 16) -> bytes:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read(limit)
        with path.open("rb") as fh:
            return fh.read(limit)
    except (OSError, EOFError, zlib.error):
        return b""


def fhir_type_of(path: Path) -> str | None:
    """The ``resourceType`` of a file's first resource: its first line's for NDJSON, the
    document's own (a Bundle) for ``.json``. None when the file does not start as FHIR."""
    head = _first_bytes(path)
    lower = path.name.lower()
    if lower.endswith(".json"):
        try:  # a Bundle's resourceType may come after its entries: read the document's top
            with path.open("rb") as fh:
                doc = json.load(fh)
            kind = doc.get("resourceType") if isinstance(doc, dict) else None
            return kind if isinstance(kind, str) else None
        except (OSError, ValueError, RecursionError):
            match = _RESOURCE_TYPE.search(head)
            return match.group(1).decode() if match else None
    line = head.split(b"\n", 1)[0]
    match = _RESOURCE_TYPE.search(line)
    return match.group(1).decode() if match else None


def _csv_header(path: Path) -> list[str]:
    fmt = "parquet" if path.name.lower().endswith(".parquet") else "csv"
    try:
        return [h.strip().lower() for h in _header(InputFile("patients", path, fmt, 0, ""))]
    except (OSError, pa.ArrowException):
        return []


def _table_of(name: str, tables: Mapping[str, object]) -> str | None:
    """The source table a file name stands for: its name up to the first dot, digit run or
    dash, in any case (``PERSON.csv``, ``measurement_2024.parquet``, ``person.csv.gz``)."""
    lower = name.lower()
    stem = re.split(r"\.(?=csv|parquet)", lower, maxsplit=1)[0]
    for table in sorted(tables, key=len, reverse=True):
        if stem == table or re.fullmatch(rf"{re.escape(table)}([_\-.]?\d[\w\-.]*)?", stem):
            return table
    return None


def detect_format(folder: Path) -> tuple[str, str]:
    """``--format auto``: the folder's format and, in one line, why."""
    if not folder.is_dir():
        return "canonical", "no folder to look in"
    names = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    for path in names:
        if path.name.lower().endswith(FHIR_SUFFIXES) and fhir_type_of(path):
            return "fhir", f"{path.name} holds FHIR {fhir_type_of(path)} resources"
    for path in names:
        if _table_of(path.name, TABLES["omop"]) in ("person", "measurement"):
            return "omop", f"{path.name} is an OMOP CDM table"
    for path in names:
        if _table_of(path.name, TABLES["synthea"]) == "patients":
            header = _csv_header(path)
            if {"id", "birthdate"} <= set(header) and "patient_id" not in header:
                return "synthea", f"{path.name} has Synthea's patient columns (Id, BIRTHDATE)"
    return "canonical", "the b12screen extracts layout (patients*, labs*, ...)"


def _fingerprint(kind: str, path: Path, fmt: str) -> InputFile:
    try:
        return InputFile(kind, path, fmt, path.stat().st_size, sha256_of(path))
    except OSError as exc:
        raise ExtractsError(
            f"cannot read {path.name}: {exc.strerror}", transient=exc.errno in TRANSIENT_ERRNOS
        ) from None


def read_again(extracts: Extracts, known_lookups: set[str]) -> dict[Path, str]:
    """The files to read even if ingested before, each with the look-up file whose content is
    new (not among ``known_lookups``, the SHA-256 of the look-ups the last run read)."""
    if not isinstance(extracts, FormatExtracts):
        return {}
    feeds = LOOKUP_DEPENDENTS.get(extracts.format, {})
    changed: dict[str, str] = {}
    for f in extracts.lookups:
        if f.sha256 not in known_lookups:
            for table in feeds.get(extracts.tables.get(f.path, ""), ()):
                changed.setdefault(table, f.name)
    return {
        f.path: changed[extracts.tables[f.path]]
        for f in extracts.files
        if extracts.tables.get(f.path) in changed
    }


def discover_format(folder: Path, fmt: str = "auto") -> FormatExtracts:
    """List ``folder`` as the extracts of ``fmt`` (``auto``: recognised by its files)."""
    if fmt not in CHOICES:
        raise ExtractsError(f"unknown format {fmt!r} (use one of {', '.join(CHOICES)})")
    if not folder.exists():
        raise ExtractsError(f"extracts folder not found: {folder}")
    if not folder.is_dir():
        raise ExtractsError(f"extracts path is not a folder: {folder}")
    chosen = ""
    if fmt == "auto":
        fmt, why = detect_format(folder)
        chosen = f"format {fmt}: {why}"
    if fmt == "canonical":
        found = discover(folder)
        return FormatExtracts(
            found.folder,
            found.files,
            found.ignored,
            found.ignored_reasons,
            "canonical",
            chosen=chosen,
        )
    inside = folder.resolve()
    files: list[InputFile] = []
    lookups: list[InputFile] = []
    tables: dict[Path, str] = {}
    ignored: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        reason = _left_out(path, inside, "-", "-")  # hidden, links, folders
        if reason is not None:
            ignored[path.name] = reason
            continue
        kind: str | None
        if path.name.lower().startswith("feedback") and path.name.lower().endswith(
            (".csv", ".csv.gz", ".parquet")
        ):  # clinicians' feedback is the canonical file whatever the EHR's format
            fb_fmt = "parquet" if path.name.lower().endswith(".parquet") else "csv"
            files.append(_fingerprint("feedback", path, fb_fmt))
            tables[path] = "feedback"
            continue
        if fmt == "fhir":
            lower = path.name.lower()
            if not lower.endswith(FHIR_SUFFIXES):
                ignored[path.name] = "not a FHIR file (.ndjson, .ndjson.gz, or a .json Bundle)"
                continue
            rtype = fhir_type_of(path)
            if rtype == "Bundle":
                kind, table, file_fmt = "bundle", "Bundle", "json"
            elif rtype in FHIR_TYPES and not lower.endswith(".json"):
                kind, table, file_fmt = FHIR_TYPES[rtype], rtype, "ndjson"
            else:
                ignored[path.name] = (
                    "no FHIR resourceType on its first line"
                    if rtype is None
                    else f"FHIR {rtype} resources are not read"
                )
                continue
        else:
            table = _table_of(path.name, TABLES[fmt])
            file_fmt = "parquet" if path.name.lower().endswith(".parquet") else "csv"
            if table is None or not path.name.lower().endswith((".csv", ".csv.gz", ".parquet")):
                label = "an OMOP CDM table" if fmt == "omop" else "a Synthea CSV file"
                ignored[path.name] = (
                    f"not {label} b12screen reads ("
                    + ", ".join(t.upper() if fmt == "omop" else f"{t}.csv" for t in TABLES[fmt])
                    + ")"
                )
                continue
            kind = TABLES[fmt][table][0]
        item = _fingerprint(kind or "lookup", path, file_fmt)
        tables[path] = table
        (files if kind else lookups).append(item)
    return FormatExtracts(
        folder=folder,
        files=tuple(files),
        ignored=tuple(ignored),
        ignored_reasons=MappingProxyType(ignored),
        format=fmt,
        lookups=tuple(lookups),
        tables=MappingProxyType(tables),
        chosen=chosen,
    )


# -- reading ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FormatLoad:
    """What reading one format gave: each file read, the rows each kind presents to staging,
    and the adapter's own counts (what each mapping recognised, what was left out)."""

    loaded: tuple[LoadedFile, ...]
    rows_by_kind: Mapping[str, int]
    counts: tuple[tuple[str, str, int], ...]  # (kind, item, rows)


def adapter_sql(fmt: str, name: str) -> str:
    return (sql_dir() / "adapters" / fmt / f"{name}.sql").read_text(encoding="utf-8")


def _read_table_file(
    con: duckdb.DuckDBPyConnection,
    f: InputFile,
    path_sql: str,
    file_id: int,
    columns: list[str],
    quarantine_kind: str | None,
) -> tuple[str, int, int]:
    """One OMOP or Synthea file as a SELECT of its wanted columns (text, lower-case names)
    plus _file_id, source_file and row_number; its malformed CSV lines quarantined. Opened as
    every extract file is (pipeline.read.ingest.open_file). Call inside ingest.reading()."""
    header = _header(f)
    opened = open_file(con, f, path_sql, f"_src_{file_id}", header)
    got = opened.columns
    own = header if len(header) == len(got) else got
    by_key = {}
    for name, col in zip(own, got, strict=True):
        by_key.setdefault(name.strip().lower(), col)
    select = ", ".join(
        f"{ident(by_key[c])}::VARCHAR AS {ident(c)}"
        if c in by_key
        else f"NULL::VARCHAR AS {ident(c)}"
        for c in columns
    )
    if quarantine_kind:
        quarantine_malformed(con, quarantine_kind, f, opened)
    part = (
        f"SELECT {file_id}::BIGINT AS _file_id, {literal(f.name)} AS source_file, "
        f"{opened.row_number}::BIGINT AS row_number, {select} FROM {opened.source}"
    )
    return part, opened.rows + opened.malformed, opened.malformed


def _missing_required(f: InputFile, table: str, fmt: str) -> None:
    _, columns, required = TABLES[fmt][table]
    header = {h.strip().lower() for h in _header(f)}
    if header:
        for col in columns[:required]:
            if col not in header:
                label = table.upper() if fmt == "omop" else f"{table}.csv"
                raise ExtractsError(f"{f.name}: no column {col!r} (an {fmt} {label} file needs it)")


def _load_tables(
    con: duckdb.DuckDBPyConnection,
    extracts: FormatExtracts,
    readable: Mapping[Path, str],
    first_file_id: int,
) -> dict[Path, tuple[int, int, int]]:
    """``src_<table>`` for every table of an OMOP or Synthea folder (empty when no file): a
    view over each file's table as read, the wanted columns as text."""
    fmt = extracts.format
    ids = _file_ids(extracts, first_file_id)
    parts: dict[str, list[str]] = {t: [] for t in TABLES[fmt]}
    read: dict[Path, tuple[int, int, int]] = {}
    for f in _source_files(extracts):
        table = extracts.tables[f.path]
        kind, columns, _ = TABLES[fmt][table]
        with reading(as_read(f)):
            _missing_required(f, table, fmt)
            part, rows, malformed = _read_table_file(
                con, f, readable[f.path], ids[f.path], list(columns), kind
            )
        parts[table].append(part)
        read[f.path] = (ids[f.path], rows, malformed)
    for table, selects in parts.items():
        columns = TABLES[fmt][table][1]
        empty = (
            "SELECT NULL::BIGINT AS _file_id, NULL::VARCHAR AS source_file, NULL::BIGINT AS row_number, "
            + ", ".join(f"NULL::VARCHAR AS {ident(c)}" for c in columns)
            + " WHERE false"
        )
        union = " UNION ALL ".join(f"({s})" for s in selects) if selects else empty
        # a view: each CSV file is already a table of its own (open_file), and a second copy
        # of every row cost as much as the adapter's mapping (docs/benchmarks.md, session 10)
        with reading(f"the {table} files"):
            con.execute(f"CREATE OR REPLACE TEMP VIEW src_{table} AS {union}")
    return read


def _file_ids(extracts: FormatExtracts, first_file_id: int) -> dict[Path, int]:
    """Numbers the files that present rows as the canonical reader would (after those already
    ingested); look-up tables after them (their rows never reach staging)."""
    feedback = [f for f in extracts.files if f.kind == "feedback"]
    order = [*feedback, *(f for f in extracts.files if f.kind != "feedback"), *extracts.lookups]
    return {f.path: first_file_id + i for i, f in enumerate(order)}


def _source_files(extracts: FormatExtracts) -> list[InputFile]:
    """The files an adapter reads (feedback files are read by the canonical reader)."""
    return [f for f in (*extracts.files, *extracts.lookups) if f.kind != "feedback"]


_LINE_READER = (
    "SELECT row_number() OVER ()::BIGINT AS row_number, line FROM read_csv({path}, "
    "columns = {{'line': 'VARCHAR'}}, header = false, auto_detect = false, delim = '\\x01', "
    "quote = '', escape = '', max_line_size = {max_line}, strict_mode = false)"
)
_MALFORMED_LINE = "malformed JSON line (not one FHIR resource)"
# what the audit says of an NDJSON file read line by line rather than by read_json
LINE_BY_LINE = "NDJSON lines read one by one (a blank line, a lone CR or a mixed file)"


def fhir_structure(name: str) -> str:
    """The explicit structure (``json_transform`` / ``read_json`` form) of ``fhir_<name>``."""
    return (sql_dir() / "adapters" / "fhir" / "structures" / f"{name}.json").read_text(
        encoding="utf-8"
    )


def _lines_sql(path: str) -> str:
    return _LINE_READER.format(path=path, max_line=_MAX_LINE_BYTES)


def _read_json_sql(f: InputFile, path: str, struct_type: str) -> str:
    """``read_json`` of one NDJSON file with its structure, a row per line (``json``: the
    resource, NULL for a broken line). A file with no line of 16 MB is read with read_json's
    default maximum_object_size (on as many threads as it has 16 MB), else with 64 MB."""
    longest = (
        _SHORT_LINE_BYTES
        if newlines.lines_shorter_than(f.path, _SHORT_LINE_BYTES)
        else _MAX_LINE_BYTES
    )
    return (
        f"read_json({path}, format = 'newline_delimited', records = false, "
        f"ignore_errors = true, maximum_object_size = {longest}, "
        f"columns = {{json: {literal(struct_type)}}})"
    )


def _read_ndjson_typed(
    con: duckdb.DuckDBPyConnection,
    f: InputFile,
    path: str,
    tmp: str,
    resource_type: str,
    struct_type: str,
    kind: str,
) -> tuple[int, int] | None:
    """The fast path: an NDJSON file of one resource type read by ``read_json`` with that
    type's explicit structure into ``tmp`` (row_number, r), each line's number kept; its broken
    lines quarantined with their text. Returns (lines, broken lines), or None when the numbers
    could not be the file's lines (the caller then reads it line by line).

    ``read_json`` with ``ignore_errors`` gives one row per line in file order (DuckDB keeps a
    single scan's order under ``preserve_insertion_order``, the default, in the table it
    makes, whose ``rowid`` then numbers it): the resource, or a row of NULLs for a line that is not one JSON
    object (broken JSON, two objects, an array or a string). It skips blank lines, and it ends
    lines at LF only, where the line reader also ends them at a lone CR. So the numbers are the
    lines' when the file has no lone CR and as many rows as lines; the broken lines' own text,
    read by the line reader, is checked to be no resource before it is quarantined."""
    ((ordered,),) = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()
    if not ordered:
        return None
    # the file's lines are counted (Python, one bytes.count per chunk) while DuckDB reads it:
    # DuckDB releases the GIL, so the count costs no wall time of its own
    with ThreadPoolExecutor(max_workers=1) as pool:
        counting = pool.submit(newlines.line_count, f.path)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {tmp}_read AS "
            f"SELECT json AS r FROM {_read_json_sql(f, path, struct_type)}"
        )
        counted = counting.result()
    if counted is None or counted[1]:  # unreadable (the line reader names why), or a lone CR
        con.execute(f"DROP TABLE {tmp}_read")
        return None
    lines = counted[0]
    # the k-th row stored is the k-th line read: a table made from one scan keeps its order,
    # and its rowid numbers it ("Order Preservation", DuckDB 2.0 docs), in parallel, where
    # row_number() OVER () numbered the scan on one thread
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {tmp} AS "
        f"SELECT (rowid + 1)::BIGINT AS row_number, r FROM {tmp}_read"
    )
    ((rows, broken, other),) = con.execute(
        f"SELECT count(*), count(*) FILTER (r.resourceType IS NULL), "
        f"count(*) FILTER (r.resourceType <> {literal(resource_type)}) FROM {tmp}"
    ).fetchall()
    if rows != lines or other:
        _drop_typed(con, tmp)
        return None
    if broken:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {tmp}_broken AS
            SELECT row_number, line,
                CASE WHEN json_valid(line) THEN json_extract_string(line, '$.resourceType') END
                    AS resource_type
            FROM ({_lines_sql(path)})
            WHERE row_number IN (SELECT row_number FROM {tmp} WHERE r.resourceType IS NULL)
            """
        )
        ((found, resources),) = con.execute(
            f"SELECT count(*), count(resource_type) FROM {tmp}_broken"
        ).fetchall()
        if found != broken or resources:  # not the lines read_json found broken: read again
            con.execute(f"DROP TABLE {tmp}_broken")
            _drop_typed(con, tmp)
            return None
        con.execute(
            f"""
            INSERT INTO quarantine
            SELECT {literal(kind)}, {literal(f.name)}, row_number, {literal(_MALFORMED_LINE)}, line
            FROM {tmp}_broken ORDER BY row_number
            """
        )
        con.execute(f"DROP TABLE {tmp}_broken")
    return int(rows), int(broken)


def _drop_typed(con: duckdb.DuckDBPyConnection, tmp: str) -> None:
    con.execute(f"DROP VIEW {tmp}")
    con.execute(f"DROP TABLE {tmp}_read")


def _read_ndjson_adapted(
    con: duckdb.DuckDBPyConnection,
    f: InputFile,
    path: str,
    tmp: str,
    file_id: int,
    name: str,
    struct_type: str,
    resource_type: str,
) -> int | None:
    """The fast path with an adapter in the same statement (a structure of _FUSED: its kind's
    adapter, or that kind's first part):
    ``read_json`` as :func:`_read_ndjson_typed` reads it, the adapter's rows (cast as
    :func:`_adapt` casts them) into ``tmp``_adapted, numbered by its ``rowid``, and no table
    of typed resources written between (writing their nested lists cost as much as the
    mapping). The adapter keeps its input's order (only SELECT and WHERE) and gives a row per
    resource it is given, the resources of the file's type (``resource_type``: a
    MedicationStatement among MedicationRequests is no row here, as it is none of
    :func:`_read_ndjson_typed`'s); so when the file has as many rows as lines and no lone CR,
    every line was one such resource and the k-th row is the k-th line. Returns the
    lines, or None (nothing kept: a broken or blank line, another type, a lone CR), when the
    file is to be read by :func:`_read_ndjson_typed`."""
    ((ordered,),) = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()
    if not ordered:
        return None
    adapter = _FUSED[name]
    kind = _kind_of(adapter)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW fhir_{name} AS SELECT {file_id}::BIGINT AS _file_id, "
        f"{literal(f.name)} AS source_file, NULL::BIGINT AS row_number, "
        f"json.resourceType AS resource_type, json AS r FROM {_read_json_sql(f, path, struct_type)} "
        f"WHERE json.resourceType = {literal(resource_type)}"
    )
    body = adapter_sql("fhir", adapter)
    columns, _, _ = _adapted_columns(con, body, [*_wanted(kind), *_extra(kind)])
    with ThreadPoolExecutor(max_workers=1) as pool:
        counting = pool.submit(newlines.line_count, f.path)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {tmp}_adapted AS SELECT {columns} FROM ({body})")
        counted = counting.result()
    ((rows,),) = con.execute(f"SELECT count(*) FROM {tmp}_adapted").fetchall()
    con.execute(f"DROP VIEW fhir_{name}")
    if counted is None or counted[1] or rows != counted[0]:
        con.execute(f"DROP TABLE {tmp}_adapted")
        return None
    return int(rows)


def _read_ndjson_lines(
    con: duckdb.DuckDBPyConnection, f: InputFile, path: str, tmp: str, kind: str
) -> tuple[int, int]:
    """The line reader: every line of an NDJSON file as text with its number into ``tmp``
    (row_number, line, resource_type, ok), a line that is no FHIR resource quarantined."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {tmp} AS
        SELECT row_number, line,
            -- a valid line that is no object (an array, a string) has no resourceType
            CASE WHEN json_valid(line)
                THEN json_extract_string(line, '$.resourceType') END AS resource_type,
            resource_type IS NOT NULL AS ok
        FROM ({_lines_sql(path)})
        """
    )
    con.execute(
        f"""
        INSERT INTO quarantine
        SELECT {literal(kind)}, {literal(f.name)}, row_number, {literal(_MALFORMED_LINE)}, line
        FROM {tmp} WHERE NOT ok ORDER BY row_number
        """
    )
    ((rows, malformed),) = con.execute(
        f"SELECT count(*), count(*) FILTER (NOT ok) FROM {tmp}"
    ).fetchall()
    return int(rows), int(malformed)


def _read_bundle(con: duckdb.DuckDBPyConnection, f: InputFile, path: str, tmp: str) -> int:
    """A Bundle: one JSON document, its entries in order into ``tmp`` as the line reader's."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {tmp} AS
        SELECT e.i::BIGINT AS row_number, json_extract(e.r, '$.resource')::VARCHAR AS line,
            json_extract_string(e.r, '$.resource.resourceType') AS resource_type,
            resource_type IS NOT NULL AS ok
        FROM (
            SELECT unnest(json_extract(content, '$.entry[*]')) AS r,
                   generate_subscripts(json_extract(content, '$.entry[*]'), 1) AS i
            FROM read_text({path})
            WHERE json_valid(content)
        ) AS e
        """
    )
    ((valid,),) = con.execute(
        f"SELECT count(*) FROM read_text({path}) WHERE json_valid(content)"
    ).fetchall()
    if not valid:
        raise ExtractsError(f"cannot read {f.name} as a FHIR Bundle: not a JSON document")
    ((rows,),) = con.execute(f"SELECT count(*) FROM {tmp}").fetchall()
    return int(rows)


def _load_fhir(
    con: duckdb.DuckDBPyConnection,
    extracts: FormatExtracts,
    readable: Mapping[Path, str],
    first_file_id: int,
    fast: bool = True,
) -> tuple[dict[Path, tuple[int, int, int]], int, frozenset[str]]:
    """``fhir_<structure>`` (FHIR_STRUCTURES): one row per resource of those types with its
    file, its line or entry number, its resourceType and ``r``, the resource read with the
    structure's explicit columns (sql/adapters/fhir/structures/); ``fhir_resources``, the same
    rows of every type without ``r`` (counts.sql). A line that is not JSON is quarantined.

    An NDJSON file is read by ``read_json`` (:func:`_read_ndjson_typed`) unless ``fast`` is
    False or its line numbers would not be the file's; then line by line, each line parsed
    with ``json_transform`` and the same structure, as a Bundle's entries are. The files of a
    structure in _FUSED are first read with its adapter (:func:`_read_ndjson_adapted`) into
    ``_adapted_<adapter>``, which :func:`_adapt` then presents; when one of them cannot be
    (or any file is a Bundle or read line by line), they are all read as the others. Returns
    each file's (file id, rows, malformed), how many lines were read line by line, and the
    adapters whose rows were made so. The adapters' macros (sql/macros/) must be loaded, as
    for :func:`load_format`."""
    ids = _file_ids(extracts, first_file_id)
    structures = {name: fhir_structure(name) for name in dict.fromkeys(FHIR_STRUCTURES.values())}
    types = {
        name: con.execute(f"SELECT typeof(json_transform('{{}}', {literal(s)}))").fetchall()[0][0]
        for name, s in structures.items()
    }
    typed: dict[str, list[str]] = {name: [] for name in structures}
    every: list[str] = []
    line_tables: list[tuple[int, str, str]] = []
    read: dict[Path, tuple[int, int, int]] = {}

    def structure_of(f: InputFile) -> str | None:
        return FHIR_STRUCTURES.get(extracts.tables.get(f.path, ""))

    def read_one(f: InputFile) -> int:
        """One file into typed and every, or line_tables; returns the lines read one by one."""
        file_id, path = ids[f.path], readable[f.path]
        tmp = f"_fhir_{file_id}"
        resource_type = extracts.tables.get(f.path, "")
        name = structure_of(f)
        kind = f.kind if f.kind in KINDS else "patients"
        with reading(f"{f.name} as FHIR"):
            if f.fmt == "json":
                got, malformed = _read_bundle(con, f, path, tmp), 0
            else:
                typed_got = None
                if fast and name is not None:
                    typed_got = _read_ndjson_typed(
                        con, f, path, tmp, resource_type, types[name], kind
                    )
                if typed_got is not None and name is not None:  # (only a known structure is)
                    head = (
                        f"SELECT {file_id}::BIGINT AS _file_id, {literal(f.name)} AS source_file, "
                        "row_number, r.resourceType AS resource_type"
                    )
                    typed[name].append(f"{head}, r FROM {tmp} WHERE r.resourceType IS NOT NULL")
                    every.append(f"{head} FROM {tmp} WHERE r.resourceType IS NOT NULL")
                    read[f.path] = (file_id, *typed_got)
                    return 0
                got, malformed = _read_ndjson_lines(con, f, path, tmp, kind)
        line_tables.append((file_id, f.name, tmp))
        read[f.path] = (file_id, int(got), int(malformed))
        return 0 if f.fmt == "json" else int(got)

    files = _source_files(extracts)
    # a Bundle may hold resources of any type: then every file is read as before
    to_fuse = [
        f
        for f in files
        if fast and structure_of(f) in _FUSED and not any(b.fmt == "json" for b in files)
    ]
    line_by_line = sum(read_one(f) for f in files if f not in to_fuse)
    if to_fuse:
        con.execute(adapter_sql("common", "macros"))  # the adapters' helpers (as load_format)
    adapted: dict[Path, int] = {}
    failed: set[str | None] = set()
    for f in to_fuse if not line_tables else []:
        if structure_of(f) not in failed:
            with reading(f"{f.name} as FHIR"):
                got = _read_ndjson_adapted(
                    con,
                    f,
                    readable[f.path],
                    f"_fhir_{ids[f.path]}",
                    ids[f.path],
                    str(structure_of(f)),
                    types[str(structure_of(f))],
                    extracts.tables[f.path],
                )
            if got is None:
                failed.add(structure_of(f))
            else:
                adapted[f.path] = got
    for f in to_fuse:  # the files of a structure one of whose files could not be
        if structure_of(f) in failed and adapted.pop(f.path, None) is not None:
            con.execute(f"DROP TABLE _fhir_{ids[f.path]}_adapted")
    line_by_line += sum(read_one(f) for f in to_fuse if f.path not in adapted)
    if line_tables and adapted:  # a line read may hold resources of a structure read fused
        for f in to_fuse:
            if adapted.pop(f.path, None) is not None:
                con.execute(f"DROP TABLE _fhir_{ids[f.path]}_adapted")
                line_by_line += read_one(f)
    fused: dict[str, list[str]] = {}
    for f in to_fuse:
        if f.path not in adapted:
            continue
        file_id, name = ids[f.path], str(structure_of(f))
        table = f"_fhir_{file_id}_adapted"
        head = f"SELECT {file_id}::BIGINT AS _file_id, {literal(f.name)} AS source_file"
        every.append(
            f"{head}, (rowid + 1)::BIGINT AS row_number, "
            f"{literal(extracts.tables[f.path])} AS resource_type FROM {table}"
        )
        # the typed resources, for whoever asks (the tests): the file read again, in order
        typed[name].append(
            f"{head}, row_number() OVER ()::BIGINT AS row_number, json.resourceType AS "
            f"resource_type, json AS r FROM {_read_json_sql(f, readable[f.path], types[name])}"
        )
        fused.setdefault(_FUSED[name], []).append(
            f"SELECT {file_id}::BIGINT * {_FILE_ID_STRIDE} + rowid + 1 AS _rid, "
            f"{literal(f.name)} AS source_file, (rowid + 1)::BIGINT AS row_number, * FROM {table}"
        )
        read[f.path] = (file_id, adapted[f.path], 0)
    for kind, parts in fused.items():
        union = " UNION ALL ".join(f"({p})" for p in parts)
        _drop_temp(con, f"_adapted_{kind}")
        con.execute(f"CREATE TEMP VIEW _adapted_{kind} AS {union}")
    for file_id, file_name, tmp in sorted(line_tables):  # in file order, as read
        head = f"SELECT {file_id}::BIGINT AS _file_id, {literal(file_name)} AS source_file, row_number, resource_type"
        every.append(f"{head} FROM {tmp} WHERE ok")
        for name, structure in structures.items():
            of_it = [t for t, n in FHIR_STRUCTURES.items() if n == name]
            typed[name].append(
                f"{head}, json_transform(line, {literal(structure)}) AS r FROM {tmp} "
                f"WHERE ok AND resource_type IN ({', '.join(literal(t) for t in of_it)})"
            )
    empty = (
        "SELECT NULL::BIGINT AS _file_id, NULL::VARCHAR AS source_file, "
        "NULL::BIGINT AS row_number, NULL::VARCHAR AS resource_type"
    )
    for name, parts in typed.items():
        union = (
            " UNION ALL ".join(f"({p})" for p in parts)
            if parts
            else f"{empty}, NULL::{types[name]} AS r WHERE false"
        )
        con.execute(f"CREATE OR REPLACE TEMP VIEW fhir_{name} AS {union}")
    union = " UNION ALL ".join(f"({p})" for p in every) if every else f"{empty} WHERE false"
    con.execute(f"CREATE OR REPLACE TEMP VIEW fhir_resources AS {union}")
    return read, line_by_line, frozenset(fused)


def _wanted(kind: str) -> list[str]:
    return [*REQUIRED_COLUMNS[kind], *OPTIONAL_COLUMNS[kind]]


def load_format(
    con: duckdb.DuckDBPyConnection,
    extracts: FormatExtracts,
    readable: Mapping[Path, str],
    first_file_id: int = 1,
    identifiers: Identifiers | None = None,
) -> FormatLoad:
    """Present an OMOP, FHIR or Synthea folder as ``raw_<kind>`` (and ``raw_feedback``, empty).

    ``readable`` gives, for each file's path (rows and look-ups), the SQL literal that opens
    exactly that file (:func:`pipeline.sqltext.literal_files`). ``identifiers`` (the rules'
    ``[identifiers]``) become columns of ``raw_patients``, taken from the identifiers the
    format's patients adapter offers (``_source_identifiers``: FHIR Patient.identifier by type
    and system, OMOP person_source_value, Synthea SSN, DRIVERS, PASSPORT, FIRST, LAST)."""
    fmt = extracts.format
    con.execute(QUARANTINE_DDL)
    con.execute(adapter_sql("common", "macros"))
    line_by_line = 0
    fused: frozenset[str] = frozenset()
    if fmt == "fhir":
        read, line_by_line, fused = _load_fhir(con, extracts, readable, first_file_id)
    else:
        read = _load_tables(con, extracts, readable, first_file_id)
    if fmt == "omop":
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE omop_concept AS {adapter_sql('omop', 'concepts')}"
        )
    rows_by_kind: dict[str, int] = {}
    counts: list[tuple[str, str, int]] = []
    for kind in KINDS:
        view = f"raw_{kind}"
        wanted = [*_wanted(kind), *_extra(kind)]
        with reading(f"the {fmt} {kind}"):
            if kind in CLINICAL_KINDS:
                made = _FIRST_PARTS.get((fmt, kind), kind) in fused  # by the reader
                counts += _adapt(con, fmt, kind, wanted, identifiers, made)
            elif kind == "feedback":
                feedback = [f for f in extracts.files if f.kind == "feedback"]
                for item in load_kind(con, kind, feedback, first_file_id, dict(readable)):
                    read[item.file.path] = (0, item.rows_read, item.malformed_lines)
            else:
                columns = ", ".join(f"NULL::VARCHAR AS {ident(c)}" for c in wanted)
                con.execute(
                    f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT NULL::BIGINT AS _rid, "
                    f"NULL::VARCHAR AS source_file, NULL::BIGINT AS row_number, {columns} WHERE false"
                )
        ((n,),) = con.execute(f"SELECT count(*) FROM {view}").fetchall()
        rows_by_kind[kind] = int(n)
    counts += [
        (str(k), str(item), int(n))
        for k, item, n in con.execute(adapter_sql(fmt, "counts")).fetchall()
    ]
    if line_by_line:
        counts.append(("other", LINE_BY_LINE, line_by_line))
    loaded = []
    for f in extracts.files:
        _, rows, malformed = read[f.path]
        loaded.append(LoadedFile(f, rows, malformed))
    return FormatLoad(tuple(loaded), MappingProxyType(rows_by_kind), tuple(sorted(counts)))


def _adapt(
    con: duckdb.DuckDBPyConnection,
    fmt: str,
    kind: str,
    wanted: list[str],
    identifiers: Identifiers | None = None,
    fused: bool = False,
) -> list[tuple[str, str, int]]:
    """Run ``sql/adapters/<fmt>/<kind>.sql`` once into ``_adapted_<kind>`` (``fused``: the
    FHIR reader made it, :func:`_read_ndjson_adapted`) and present its rows
    as ``raw_<kind>``: those it does not leave out (``_left_out``, when the adapter has that
    column), with the site's identifier columns taken from ``_source_identifiers`` (a map of
    lower-case key to text, when the adapter has it). Returns the counts of what it left out
    and of its ``_note`` column.

    A kind in two parts (_FIRST_PARTS): its first part into ``_adapted_<first part>`` as
    above (``fused``: the reader made that one), then the kind's adapter, which reads those
    rows with their ``_rid``, into ``_adapted_<kind>``."""
    body = adapter_sql(fmt, kind)
    table = f"_adapted_{kind}"
    part = _FIRST_PARTS.get((fmt, kind))
    if part is not None:
        if not fused:
            _adapted_table(con, adapter_sql(fmt, part), f"_adapted_{part}", wanted)
        columns, bookkeeping, own = _adapted_table(con, body, table, wanted, from_rid=True)
    elif not fused:
        columns, bookkeeping, own = _adapted_table(con, body, table, wanted)
    else:
        columns, bookkeeping, own = _adapted_columns(con, body, wanted)
    keep = "WHERE _left_out IS NULL" if "_left_out" in bookkeeping else ""
    drop = f" EXCLUDE ({', '.join(bookkeeping)})" if bookkeeping else ""
    carried = ""
    if SOURCE_IDENTIFIERS in own and identifiers is not None:
        carried = "".join(
            f", map_extract_value({SOURCE_IDENTIFIERS}, {literal(source)}) AS {ident(name)}"
            for name, source in identifiers.sources_by_key().items()
            if name not in wanted
        )
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW raw_{kind} AS SELECT *{drop}{carried} FROM {table} {keep}"
    )
    out: list[tuple[str, str, int]] = []
    if "_left_out" in bookkeeping:
        out += con.execute(
            f"SELECT {literal(kind)}, 'left out: ' || _left_out, count(*) FROM {table} "
            "WHERE _left_out IS NOT NULL GROUP BY ALL"
        ).fetchall()
    if "_note" in bookkeeping:
        out += con.execute(
            f"SELECT {literal(kind)}, _note, count(*) FROM {table} "
            f"WHERE _note IS NOT NULL {'AND _left_out IS NULL' if keep else ''} GROUP BY ALL"
        ).fetchall()
    return [(str(k), str(i), int(n)) for k, i, n in out]


def _adapted_table(
    con: duckdb.DuckDBPyConnection,
    body: str,
    table: str,
    wanted: list[str],
    from_rid: bool = False,
) -> tuple[str, list[str], set[str]]:
    """The adapter ``body``'s rows as the temporary table ``table``: ``_rid`` (made from
    ``_file_id`` and ``row_number``, or the one it gives: ``from_rid``), ``source_file``,
    ``row_number`` and its columns as :func:`_adapted_columns` casts them (which it returns)."""
    columns, bookkeeping, own = _adapted_columns(con, body, wanted)
    rid = "_rid" if from_rid else f"_file_id * {_FILE_ID_STRIDE} + row_number AS _rid"
    _drop_temp(con, table)  # a view when an earlier load on this connection fused the kind
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT "
        f"{rid}, source_file, row_number, {columns} FROM ({body})"
    )
    return columns, bookkeeping, own


def _drop_temp(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop the temporary table or view ``name``, if there is one."""
    for kind, catalog, column in (
        ("VIEW", "duckdb_views()", "view_name"),
        ("TABLE", "duckdb_tables()", "table_name"),
    ):
        ((n,),) = con.execute(
            f"SELECT count(*) FROM {catalog} WHERE temporary AND {column} = ?", [name]
        ).fetchall()
        if n:
            con.execute(f"DROP {kind} {ident(name)}")


def _adapted_columns(
    con: duckdb.DuckDBPyConnection, body: str, wanted: list[str]
) -> tuple[str, list[str], set[str]]:
    """An adapter's columns as ``_adapted_<kind>`` holds them (every wanted column and its
    ``_left_out``, ``_note`` and ``_medication_id`` as text, ``_source_identifiers`` as a map),
    its bookkeeping columns, and every column it gives."""
    own = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM ({body})").fetchall()}
    bookkeeping = [c for c in ("_left_out", "_note", SOURCE_IDENTIFIERS, MEDICATION_ID) if c in own]
    columns = ", ".join(
        f"{ident(c)}::VARCHAR AS {ident(c)}"
        for c in [*wanted, *bookkeeping]
        if c != SOURCE_IDENTIFIERS
    )
    if SOURCE_IDENTIFIERS in own:
        columns += f", {SOURCE_IDENTIFIERS}::MAP(VARCHAR, VARCHAR) AS {SOURCE_IDENTIFIERS}"
    return columns, bookkeeping, own


def _kind_of(adapter: str) -> str:
    """The kind an adapter presents: its own name, or the kind it is the first part of."""
    return next((k for (_, k), part in _FIRST_PARTS.items() if part == adapter), adapter)


def _extra(kind: str) -> tuple[str, ...]:
    """Columns an adapter presents beyond the canonical ones the reader declares."""
    extra = {"patients": ("death_date",), "diagnoses": ("code_system",)}.get(kind, ())
    return tuple(c for c in extra if c not in _wanted(kind))
