"""Find the extract files in a folder and fingerprint them (docs/inputs.md).

Files are matched by name prefix (labs*, patients*, medications*, diagnoses*, and clinicians'
feedback*), each .csv,
.csv.gz or .parquet. Anything else in the folder is listed as ignored, never read silently.
"""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from pipeline.errors import ExtractsError

KINDS = ("patients", "labs", "medications", "diagnoses", "feedback")
# Kinds a database must have received at least once (a night may bring only new lab files).
REQUIRED_KINDS = ("patients", "labs")
FORMATS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet"}

# Columns each kind must have (after lower-casing and trimming the header), and the optional
# ones the rules read. Other columns are kept in the raw tables and ignored by the rules.
REQUIRED_COLUMNS = {
    "patients": ("patient_id", "birth_date"),
    "labs": ("patient_id", "collected_at", "value"),
    "medications": ("patient_id", "start_date"),
    "diagnoses": ("patient_id", "code", "recorded_at"),
    "feedback": ("patient_id", "criterion", "action"),
}
OPTIONAL_COLUMNS = {
    "patients": ("sex", "site", "death_date"),
    "labs": ("loinc", "test_name", "unit", "result_id", "reference_low", "reference_high"),
    "medications": ("medication", "rxnorm", "atc", "end_date", "route"),
    "diagnoses": ("description", "code_system"),  # code_system: icd10 (default) or snomed
    "feedback": ("until", "note"),
}
# Read errors that may pass by themselves (a network share timing out): worth a retry.
TRANSIENT_ERRNOS = {
    errno.EIO,
    errno.ETIMEDOUT,
    errno.EAGAIN,
    errno.EBUSY,
    errno.ESTALE,
    errno.EINTR,
}
# At least one of these must be present for a file to be usable.
ONE_OF_COLUMNS = {
    "labs": ("loinc", "test_name"),
    "medications": ("medication", "rxnorm", "atc"),
}


@dataclass(frozen=True)
class InputFile:
    kind: str
    path: Path
    fmt: str
    size: int
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Extracts:
    folder: Path
    files: tuple[InputFile, ...]
    ignored: tuple[str, ...]  # every other entry of the folder, by name
    # why each was left out: not an extract's name or format, hidden, not a regular file, a
    # link that leads outside the folder or nowhere
    ignored_reasons: Mapping[str, str] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[InputFile]:
        return [f for f in self.files if f.kind == kind]


def _format_of(name: str) -> str | None:
    lower = name.lower()
    for suffix, fmt in sorted(FORMATS.items(), key=lambda kv: -len(kv[0])):
        if lower.endswith(suffix):
            return fmt
    return None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def discover(folder: Path) -> Extracts:
    """List the extract files in ``folder``; fail with one line if it cannot be used."""
    if not folder.exists():
        raise ExtractsError(f"extracts folder not found: {folder}")
    if not folder.is_dir():
        raise ExtractsError(f"extracts path is not a folder: {folder}")
    files: list[InputFile] = []
    ignored: dict[str, str] = {}
    inside = folder.resolve()
    for path in sorted(folder.iterdir()):
        kind = next((k for k in KINDS if path.name.lower().startswith(k)), None)
        fmt = _format_of(path.name)
        reason = _left_out(path, inside, kind, fmt)
        if reason is not None:
            ignored[path.name] = reason
            continue
        try:
            files.append(InputFile(kind, path, fmt, path.stat().st_size, sha256_of(path)))
        except OSError as exc:
            raise ExtractsError(
                f"cannot read {path.name}: {exc.strerror}",
                transient=exc.errno in TRANSIENT_ERRNOS,
            ) from None
    return Extracts(
        folder=folder,
        files=tuple(files),
        ignored=tuple(ignored),
        ignored_reasons=MappingProxyType(ignored),
    )


def _left_out(path: Path, inside: Path, kind: str | None, fmt: str | None) -> str | None:
    """Why ``path`` is not read as an extract, or None when it is one."""
    if path.name.startswith("."):
        return "hidden (its name starts with a dot)"
    if path.is_symlink():
        target = path.resolve()
        if not target.exists():
            return "a link that leads nowhere"
        if not target.is_relative_to(inside):
            return "a link to a file outside the extracts folder (not followed)"
    if path.is_dir():
        return "a folder (sub-folders are not read)"
    if not path.is_file():
        return "not a regular file"
    if kind is None:
        return "not an extract's name (" + ", ".join(f"{k}*" for k in KINDS) + ")"
    if fmt is None:
        return "not an extract's format (.csv, .csv.gz, .parquet)"
    return None
