"""Where files are written: the extracts folder and the truth folder, with deterministic bytes.

`LabRow` is one lab row and the file it goes to: north writes CSV (results older than a year
in a second, archive file), south gzipped CSV with upper-case headers and an extra
ORDERING_CLINIC column, east Parquet with every column text. CSV lines end in ``\\n``, gzip
carries mtime 0, Parquet is zstd without statistics: the same rows give the same bytes.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipeline.demo.guidance import ALL_CRITERIA
from pipeline.demo.truth import DemoTruth

LAB_COLUMNS = (
    "patient_id",
    "collected_at",
    "loinc",
    "test_name",
    "value",
    "unit",
    "reference_low",
    "reference_high",
    "result_id",
)


@dataclass
class LabRow:
    site: str
    archive: bool  # north keeps results older than a year in a second file
    values: dict[str, str]
    messy: str | None = None  # why the row must be quarantined

    @property
    def file(self) -> str:
        if self.site == "N":
            return "labs_site_north_archive.csv" if self.archive else "labs_site_north.csv"
        return {"S": "labs_site_south.csv.gz", "E": "labs_site_east.parquet"}[self.site]


MED_COLUMNS = ("patient_id", "medication", "rxnorm", "atc", "start_date", "end_date", "route")
DX_COLUMNS = ("patient_id", "code", "recorded_at", "description")


def _csv_bytes(
    header: Sequence[str], rows: Iterable[Mapping[str, str]], keys: Sequence[str]
) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row[k] for k in keys])
    return buf.getvalue().encode("utf-8")


def _write_csv(
    path: Path, header: Sequence[str], rows: Iterable[Mapping[str, str]], keys: Sequence[str]
) -> None:
    path.write_bytes(_csv_bytes(header, rows, keys))


def _write_csv_gz(
    path: Path, header: Sequence[str], rows: Iterable[Mapping[str, str]], keys: Sequence[str]
) -> None:
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(_csv_bytes(header, rows, keys))
    path.write_bytes(raw.getvalue())


def _write_parquet(path: Path, rows: Sequence[Mapping[str, str]], keys: Sequence[str]) -> None:
    frame = pl.DataFrame(
        {k: [r[k] for r in rows] for k in keys}, schema={k: pl.String for k in keys}
    )
    frame.write_parquet(path, compression="zstd", statistics=False)


def _write_labs(out_dir: Path, rows: Sequence[LabRow]) -> None:
    by_file: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_file[r.file].append(r.values)
    north, archive = by_file["labs_site_north.csv"], by_file["labs_site_north_archive.csv"]
    south, east = by_file["labs_site_south.csv.gz"], by_file["labs_site_east.parquet"]
    _write_csv(out_dir / "labs_site_north.csv", LAB_COLUMNS, north, LAB_COLUMNS)
    _write_csv(out_dir / "labs_site_north_archive.csv", LAB_COLUMNS, archive, LAB_COLUMNS)
    south_keys = ("patient_id", "collected_at", "test_name", "value", "unit", "result_id")
    south_header = [k.upper() for k in south_keys] + ["ORDERING_CLINIC"]
    south_rows = [{**r, "clinic": "Southside Family Practice"} for r in south]
    _write_csv_gz(
        out_dir / "labs_site_south.csv.gz", south_header, south_rows, (*south_keys, "clinic")
    )
    east_keys = ("patient_id", "collected_at", "loinc", "test_name", "value", "unit", "result_id")
    _write_parquet(out_dir / "labs_site_east.parquet", east, east_keys)


def _write_extracts(
    out_dir: Path,
    patient_rows: Sequence[Mapping[str, str]],
    lab_rows: Sequence[LabRow],
    meds: Sequence[Mapping[str, str]],
    dxs: Sequence[Mapping[str, str]],
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    patient_keys = ("patient_id", "sex", "birth_date", "site", "death_date")
    patient_rows = [{"death_date": "", **row} for row in patient_rows]
    _write_csv(out_dir / "patients.csv", patient_keys, patient_rows, patient_keys)
    _write_labs(out_dir, lab_rows)
    _write_csv(out_dir / "medications.csv", MED_COLUMNS, meds, MED_COLUMNS)
    _write_csv(out_dir / "diagnoses.csv", DX_COLUMNS, dxs, DX_COLUMNS)


def _write_truth(truth: DemoTruth) -> None:
    order = {c: i for i, c in enumerate(ALL_CRITERIA)}
    flags = sorted(truth.expected_flags, key=lambda f: (f[0], order[f[1]]))
    _write_csv(
        truth.truth_dir / "expected_flags.csv",
        ("patient_id", "criterion"),
        ({"p": p, "c": c} for p, c in flags),
        ("p", "c"),
    )
    planted_rows = (
        {
            "p": pid,
            "c": ";".join(sorted(crits, key=order.__getitem__)),
            "w": truth.planted_purpose.get(pid, ""),
        }
        for pid, crits in sorted(truth.planted.items())
    )
    _write_csv(
        truth.truth_dir / "planted.csv",
        ("patient_id", "expected_criteria", "purpose"),
        planted_rows,
        ("p", "c", "w"),
    )
    _write_csv(
        truth.truth_dir / "messy.csv",
        ("reason", "rows"),
        ({"r": r, "n": str(n)} for r, n in truth.messy_by_reason.items()),
        ("r", "n"),
    )
