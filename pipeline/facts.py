"""What each stage of a run hands the next: typed, immutable facts.

    prepare  -> Prepared   the run's id and date, the checked rules, the files to read
    ingest   -> Read       each file read, with its row counts
    validate -> Validated  per kind: rows checked and quarantined, rows new / re-sent / corrected
    screen   -> Screened   patients per criterion, the care-process measures

The stages hold their data in the run's DuckDB transaction; these objects carry only what
the later stages, the provenance record (run.json) and the audit need to know about it.
They are frozen: a later stage can read an earlier stage's facts but never change them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pipeline.read.discover import Extracts, InputFile
from pipeline.rules import Rules


def frozen_map(items: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(items))


@dataclass(frozen=True)
class Prepared:
    run_id: str
    as_of: date
    started_at: datetime
    rules: Rules
    extracts_folder: Path | None
    extracts: Extracts  # the files this run reads (already-ingested ones left out)
    skipped: tuple[InputFile, ...]  # files whose content an earlier run ingested


@dataclass(frozen=True)
class LoadedFile:
    file: InputFile
    rows_read: int
    malformed_lines: int
    line_endings_normalised: bool = False  # mixed line endings: read from an LF copy

    @property
    def rows_staged(self) -> int:
        """The rows staging makes of this file: malformed CSV lines are quarantined before."""
        return self.rows_read - self.malformed_lines


@dataclass(frozen=True)
class Read:
    loaded: tuple[LoadedFile, ...]
    # rows each kind presents to staging, when a format adapter counted them (a FHIR Bundle
    # holds several kinds; left-out resources are in no kind); None: summed from ``loaded``
    rows_by_kind: Mapping[str, int] | None = None
    input_format: str = "canonical"
    # the adapter's counts (kind, item, rows): what each mapping recognised, what was left out
    format_counts: tuple[tuple[str, str, int], ...] = ()

    def rows_of(self, kind: str) -> int:
        """The rows of ``kind`` staging must make (malformed lines excluded)."""
        if self.rows_by_kind is not None:
            return int(self.rows_by_kind.get(kind, 0))
        return sum(i.rows_staged for i in self.loaded if i.file.kind == kind)


@dataclass(frozen=True)
class ValidationResult:
    kind: str
    rows_checked: int
    rows_quarantined: int

    @classmethod
    def total(cls, kind: str, parts: Iterable[ValidationResult]) -> ValidationResult:
        """One result for ``kind`` from the results of its parts (batches, shards)."""
        parts = list(parts)
        return cls(
            kind,
            sum(p.rows_checked for p in parts),
            sum(p.rows_quarantined for p in parts),
        )


@dataclass(frozen=True)
class MergeCounts:
    kind: str
    valid: int = 0
    new: int = 0
    resent: int = 0
    corrected: int = 0

    @classmethod
    def total(cls, kind: str, parts: Iterable[MergeCounts]) -> MergeCounts:
        """One count for ``kind`` from the counts of its parts (batches, shards)."""
        parts = list(parts)
        fields = ("valid", "new", "resent", "corrected")
        return cls(kind, **{f: sum(getattr(p, f) for p in parts) for f in fields})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Validated:
    validation: Mapping[str, ValidationResult]
    merged: Mapping[str, MergeCounts]


@dataclass(frozen=True)
class Screened:
    criterion_counts: Mapping[str, int]
    measures: tuple[Mapping[str, Any], ...]
