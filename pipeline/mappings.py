"""A site's own mapping tables, named by its rules profile (``[mappings]``).

A site file has the columns of the shipped table it extends (data/<table>.csv) plus
``decided_by``: who decided the mapping (a person, a committee), never empty. A site row
replaces every shipped row with the same key (the key as staging compares it: a test name
lower-cased with its spaces collapsed, an ICD-10 code upper-cased without its dot); a key the
shipped table lacks extends it. A row whose target (analyte, drug group, condition) is empty
unmaps its key: rows with it are then recognised by nothing.

The files are read and checked when the rules are loaded, before any data is read; a
malformed one stops the run with one line naming the file, the row and the column (exit code
of a bad rules file). Their bytes are part of the rules SHA-256, so run.json, the registry and
every output's stamp trace a flag to the mappings that made it. Paths are relative to the
profile file that names them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline import resources
from pipeline.errors import RulesError

DECIDED_BY = "decided_by"


def _text_key(v: str) -> str:
    """As sql/macros/parsing.sql text_key: lower case, trimmed, runs of spaces as one."""
    return re.sub(r"\s+", " ", v).strip().lower()


def _drug_key(system: str, code: str) -> str:
    """As runner._load_reference_tables keys data/drug_codes.csv."""
    if system == "name":
        return " ".join(w for w in re.split(r"[^\w]+|_", code.lower()) if w)
    return code.strip().upper() if system == "atc" else code.strip()


@dataclass(frozen=True)
class Table:
    """A shipped mapping table a site may extend: its columns, key and target column."""

    name: str  # the [mappings] key and data/<name>.csv
    columns: tuple[str, ...]
    key: tuple[str, ...]
    target: str  # the column a blank of which unmaps the key
    target_kind: str  # analyte, drug group or condition (checked against the known ones)
    ref_table: str  # the temp table staging and the criteria read


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "lab_test_names",
            ("test_name_key", "analyte", "note"),
            ("test_name_key",),
            "analyte",
            "analyte",
            "ref_lab_test_names",
        ),
        Table(
            "drug_codes",
            ("drug_group", "ingredient", "code_system", "code", "source"),
            ("code_system", "code"),
            "drug_group",
            "drug group",
            "ref_drug_codes",
        ),
        Table(
            "diagnosis_codes",
            ("condition", "code", "description", "source"),
            ("code",),
            "condition",
            "condition",
            "ref_diagnosis_codes",
        ),
        Table(
            "diagnosis_codes_snomed",
            ("condition", "code", "description", "source"),
            ("code",),
            "condition",
            "condition",
            "ref_diagnosis_codes_snomed",
        ),
    )
}
DRUG_CODE_SYSTEMS = ("name", "rxnorm", "atc")


@dataclass(frozen=True)
class SiteMapping:
    """One site file, checked: its rows (with ``key``, the key as the SQL compares it)."""

    table: str
    path: Path
    sha256: str
    rows: tuple[dict[str, str], ...]
    raw: bytes

    @property
    def label(self) -> str:
        """How outputs name it (the file name; never the site's folders)."""
        return f"site {self.table}: {self.path.name}"

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(r["key"] for r in self.rows)


def key_of(table: str, row: dict[str, str]) -> str:
    if table == "lab_test_names":
        return _text_key(row["test_name_key"])
    if table == "drug_codes":
        return f"{row['code_system']}|{_drug_key(row['code_system'], row['code'])}"
    if table == "diagnosis_codes":
        return row["code"].strip().upper().replace(".", "")
    return row["code"].strip()


def shipped_label(table: str) -> str:
    return f"data/{table}.csv"


def read_site_mapping(table: str, path: Path, known: dict[str, set[str]]) -> SiteMapping:
    """Read and check one site file; ``known`` gives the analytes, drug groups and conditions
    its targets may name."""
    spec = TABLES[table]
    where = f"[mappings] {table}: {path.name}"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RulesError(f"{where}: file not found (paths are relative to the profile)") from None
    except OSError as exc:
        raise RulesError(f"{where}: cannot read it ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RulesError(f"{where}: not UTF-8 text") from None
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        header = [h.strip() for h in (reader.fieldnames or [])]
        rows = list(reader)
    except csv.Error as exc:
        raise RulesError(f"{where}: not a readable CSV file ({exc})") from None
    expected = (*spec.columns, DECIDED_BY)
    missing = [c for c in expected if c not in header]
    extra = [c for c in header if c not in expected]
    if missing or extra or len(set(header)) != len(header):
        raise RulesError(
            f"{where}: columns must be {', '.join(expected)}"
            + (f" (missing {missing[0]})" if missing else "")
            + (f" (unknown {extra[0]})" if extra else "")
        )
    checked: list[dict[str, str]] = []
    targets: dict[str, set[str]] = {}
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        at = f"{where} row {number}"
        if None in row or any(v is None for v in row.values()):
            raise RulesError(f"{at}: has {'more' if None in row else 'fewer'} cells than columns")
        row = {k.strip(): v.strip() for k, v in row.items()}
        if not row[DECIDED_BY]:
            raise RulesError(f"{at}: decided_by is empty (name who decided this mapping)")
        for col in spec.key:
            if not row[col]:
                raise RulesError(f"{at}: {col} is empty")
        if table == "drug_codes" and row["code_system"] not in DRUG_CODE_SYSTEMS:
            raise RulesError(f"{at}: code_system must be one of {', '.join(DRUG_CODE_SYSTEMS)}")
        target = row[spec.target]
        if target and target not in known[spec.target_kind]:
            raise RulesError(f"{at}: unknown {spec.target_kind} {target!r}")
        key = key_of(table, row)
        if not key or (table == "drug_codes" and key.endswith("|")):
            raise RulesError(f"{at}: {spec.key[-1]} has no letters or digits")
        seen = targets.setdefault(key, set())
        if target in seen:
            raise RulesError(f"{at}: the same mapping as an earlier row")
        if seen and ("" in seen or not target):
            raise RulesError(f"{at}: unmaps a key an earlier row maps (or maps one it unmaps)")
        seen.add(target)
        checked.append({**row, "key": key})
    return SiteMapping(table, path, hashlib.sha256(raw).hexdigest(), tuple(checked), raw)


def known_targets(analytes: set[str]) -> dict[str, set[str]]:
    """What a site row may map to: the rules' analytes, the shipped drug groups and conditions."""
    from pipeline.rules import reference_names

    names = reference_names()
    conditions = names["_conditions"] | _column("diagnosis_codes_snomed.csv", "condition")
    return {"analyte": analytes, "drug group": names["_groups"], "condition": conditions}


def _column(name: str, col: str) -> set[str]:
    with (resources.data_dir() / name).open(encoding="utf-8", newline="") as f:
        return {row[col] for row in csv.DictReader(f)}
