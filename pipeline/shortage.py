"""A run that meets a full disk, a folder it may not write or too little memory: one line with
the exit code the README gives, never a traceback, never mistaken for bad data.

DuckDB and the operating system say these things in many ways (``OutOfMemoryException``,
``IOException`` or a failed COMMIT naming a file, ``OSError`` with an errno). :func:`translate`
reads where the fault happened (the output folder, the database, the spill folder) from the
path the error names, else from the stage, and gives:

* output folder (full, read-only, not a folder): :class:`OutputError` (exit 5);
* database or spill folder (full, read-only, cannot be made): :class:`ResourceError` (exit 7);
* out of memory under ``--memory-limit``: :class:`OutOfMemoryError` (exit 7), which says to
  raise the limit; DuckDB's own "could not offload" (the spill disk is full) is told apart and
  does not say so.

Messages hold paths, stages, the memory limit and the system's reason, never a row value.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline.errors import B12ScreenError, OutOfMemoryError, OutputError, ResourceError

# errnos that mean "this place cannot take the write", whatever was written
_PLACE_ERRNOS = {
    errno.ENOSPC: "no space left on the disk",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the disk or the process's file size limit",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a path component is not a folder",
    errno.EEXIST: "a file is in the way",
}
# the same reasons as DuckDB's messages spell them (strerror texts)
_TEXTS = {
    "no space left on device": errno.ENOSPC,
    "disk quota exceeded": errno.EDQUOT,
    "file too large": errno.EFBIG,
    "read-only file system": errno.EROFS,
    "permission denied": errno.EACCES,
    "operation not permitted": errno.EPERM,
    "not a directory": errno.ENOTDIR,
    "file exists": errno.EEXIST,
}
_NAMED_PATH = re.compile(r"""(?:file|directory)\s+["']([^"']+)["']""", re.IGNORECASE)
_OFFLOAD = ("max_temp_directory_size", "failed to offload")


@dataclass(frozen=True)
class Places:
    """Where a run writes: its output folder, its database and DuckDB's spill folder."""

    out: Path
    db: Path
    spill: Path
    memory_limit: str | None


def spill_folder(db: Path) -> Path:
    return db.with_name(db.name + ".spill")


def _errno_of(exc: BaseException) -> int | None:
    if isinstance(exc, OSError) and exc.errno in _PLACE_ERRNOS:
        return exc.errno
    if isinstance(exc, duckdb.Error):
        text = str(exc).lower()
        for phrase, number in _TEXTS.items():
            if phrase in text:
                return number
    return None


def is_resource_fault(exc: BaseException) -> bool:
    """True for out of memory and for a write the disk refused (not for a file that cannot
    be read): readers let these through instead of blaming the file they were reading."""
    if isinstance(exc, duckdb.OutOfMemoryException):
        return True
    number = _errno_of(exc)
    if number is None:
        return False
    if isinstance(exc, duckdb.Error):
        text = str(exc).lower()
        return (
            "write" in text
            or "create directory" in text
            or number
            in (
                errno.ENOSPC,
                errno.EDQUOT,
                errno.EFBIG,
            )
        )
    return number in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        return False


def _named_path(exc: BaseException) -> Path | None:
    if isinstance(exc, OSError) and exc.filename:
        return Path(exc.filename)
    match = _NAMED_PATH.search(str(exc))
    return Path(match.group(1)) if match else None


def translate(exc: BaseException, places: Places, stage: str | None) -> B12ScreenError | None:
    """The one-line error for a resource fault, or None when ``exc`` is not one."""
    stage = stage or "prepare"
    if isinstance(exc, duckdb.OutOfMemoryException):
        text = str(exc)
        if any(marker in text for marker in _OFFLOAD):
            return ResourceError(
                f"DuckDB could not spill to {places.spill} in the {stage} stage: the disk under "
                "it has no room left (DuckDB uses at most the free space of that disk); free "
                "space there; nothing was changed"
            )
        return OutOfMemoryError(
            f"DuckDB ran out of memory in the {stage} stage (memory limit "
            f"{places.memory_limit or 'DuckDB default'}): raise --memory-limit, or free memory "
            "on the machine; nothing was changed"
        )
    number = _errno_of(exc)
    if number is None or (isinstance(exc, duckdb.Error) and not is_resource_fault(exc)):
        return None
    reason = _PLACE_ERRNOS[number]
    path = _named_path(exc)
    if path is not None and _inside(path, places.spill):
        return ResourceError(
            f"cannot write to the spill folder {places.spill} in the {stage} stage ({reason}); "
            "free space there or make it writable; nothing was changed"
        )
    database_files = {places.db.name, places.db.name + ".wal"}
    if (
        path is not None and path.name in database_files and _inside(path.parent, places.db.parent)
    ) or (path is None and stage == "publish" and isinstance(exc, duckdb.Error)):
        return ResourceError(
            f"cannot write to the database {places.db} in the {stage} stage ({reason}); free "
            "space on its disk or make it writable; nothing was changed"
        )
    if (path is not None and _inside(path, places.out)) or (
        path is None and stage in ("outputs", "publish")
    ):
        return OutputError(
            f"cannot write the outputs into {places.out} ({reason}); the published outputs "
            "are kept as they were"
        )
    return None
