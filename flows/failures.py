"""Make sure a failed run is in the run registry (the ``runs`` table), exactly once.

The runner's ``fail()`` records a failed run itself when it has the database open. It cannot
when the run stopped before that (rules or extracts rejected) or because another process
holds the database. The flow's failure hook then calls :func:`record_failed_run`:

* already in ``runs`` -> nothing is written (no duplicate);
* database free -> one ``failed`` row is inserted;
* database busy or unwritable -> the row waits as one JSON file in ``<db>.failed-runs/``
  beside the database, and :func:`flush_pending` moves it into ``runs`` at the start of the
  next flow run (nightly or monthly).

Only ids, dates, versions and the one-line cause are kept (causes are ``B12ScreenError``
messages, which never carry patient data, or an exception's type name). No Prefect here.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from pipeline import __version__
from pipeline.errors import B12ScreenError

log = logging.getLogger("b12screen")

COLUMNS = (
    "run_id",
    "as_of",
    "started_at",
    "finished_at",
    "status",
    "error",
    "code_version",
    "rules_version",
    "rules_sha256",
    "record",
)

RECORDED, ALREADY_RECORDED, QUEUED = "recorded", "already recorded", "queued"


@dataclass(frozen=True)
class FailedRun:
    run_id: str
    as_of: date | None
    started_at: datetime | None
    finished_at: datetime
    error: str
    code_version: str = __version__
    rules_version: str | None = None
    rules_sha256: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FailedRun:
        data = json.loads(text)
        return cls(
            run_id=data["run_id"],
            as_of=date.fromisoformat(data["as_of"]) if data.get("as_of") else None,
            started_at=_datetime(data.get("started_at")),
            finished_at=_datetime(data.get("finished_at")) or utc_now(),
            error=data.get("error") or "unknown",
            code_version=data.get("code_version") or __version__,
            rules_version=data.get("rules_version"),
            rules_sha256=data.get("rules_sha256"),
        )

    def row(self) -> list[Any]:
        record = {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "status": "failed",
            "error": self.error,
            "recorded_by": "flow failure hook",
        }
        return [
            self.run_id,
            self.as_of,
            self.started_at,
            self.finished_at,
            "failed",
            self.error,
            self.code_version,
            self.rules_version,
            self.rules_sha256,
            json.dumps(record),
        ]


def failure_reason(exc: BaseException | None) -> str:
    """The cause as the runner records it: a B12ScreenError's one line, else the type name."""
    if exc is None:
        return "unknown"
    if isinstance(exc, B12ScreenError):
        return (str(exc).splitlines() or [type(exc).__name__])[0]
    return type(exc).__name__


def from_run(run: Any, exc: BaseException | None) -> FailedRun:
    """The registry row of a ``pipeline.runner.ScreeningRun`` that failed with ``exc``."""
    rules = getattr(run, "rules", None)
    return FailedRun(
        run_id=run.run_id,
        as_of=run.config.as_of,
        started_at=getattr(run, "started_at", None),
        finished_at=utc_now(),
        error=failure_reason(exc),
        rules_version=getattr(rules, "version", None),
        rules_sha256=getattr(rules, "sha256", None),
    )


def pending_dir(db: Path) -> Path:
    return Path(db).with_name(Path(db).name + ".failed-runs")


def record_failed_run(db: Path, failed: FailedRun) -> str:
    """Put ``failed`` in the registry unless it is there; queue it if the database is busy.

    Returns RECORDED, ALREADY_RECORDED or QUEUED. Never raises for a busy database.
    """
    db = Path(db)
    try:
        con = _connect(db)
    except (duckdb.Error, OSError) as exc:
        log.info("run %s: database unavailable (%s); failure queued", failed.run_id, _kind(exc))
        _queue(db, failed)
        return QUEUED
    try:
        outcome = _insert(con, failed)
        if outcome is None:
            _queue(db, failed)
            return QUEUED
        _flush(con, db)
        return outcome
    except duckdb.Error as exc:
        log.warning("run %s: failure not written (%s); queued", failed.run_id, _kind(exc))
        _queue(db, failed)
        return QUEUED
    finally:
        con.close()


def flush_pending(db: Path) -> int:
    """Move queued failures into the registry when the database is free; how many moved.

    Best effort: a busy or missing database leaves the queue for the next time.
    """
    db = Path(db)
    if not _pending_files(db):
        return 0
    try:
        con = _connect(db)
    except (duckdb.Error, OSError):
        return 0
    try:
        return _flush(con, db)
    except duckdb.Error as exc:
        log.warning("queued failures not moved into the registry (%s)", _kind(exc))
        return 0
    finally:
        con.close()


def pending(db: Path) -> list[FailedRun]:
    """The queued failures (not yet in the registry), oldest first."""
    return [FailedRun.from_json(p.read_text(encoding="utf-8")) for p in _pending_files(Path(db))]


# -- helpers ---------------------------------------------------------------------------------
def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _datetime(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _kind(exc: BaseException) -> str:
    return (
        "database in use by another process" if "lock" in str(exc).lower() else type(exc).__name__
    )


def _connect(db: Path) -> duckdb.DuckDBPyConnection:
    if db.parent and not db.parent.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(db))


def _runs_ddl() -> str | None:
    """The registry's own CREATE TABLE for ``runs``, so the table has one definition."""
    from pipeline.registry import registry_ddl

    return registry_ddl().get("runs")


def _insert(con: duckdb.DuckDBPyConnection, failed: FailedRun) -> str | None:
    """RECORDED / ALREADY_RECORDED; None when there is no ``runs`` table and no DDL for it."""
    has_runs = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'"
    ).fetchone()[0]
    if not has_runs:
        ddl = _runs_ddl()
        if ddl is None:
            return None
        con.execute(ddl)
    con.execute("BEGIN TRANSACTION")
    try:
        if con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [failed.run_id]).fetchone()[0]:
            con.execute("ROLLBACK")
            return ALREADY_RECORDED
        columns = ", ".join(COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)
        con.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", failed.row())
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return RECORDED


def _pending_files(db: Path) -> list[Path]:
    folder = pending_dir(db)
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def _queue(db: Path, failed: FailedRun) -> None:
    folder = pending_dir(db)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{failed.run_id}.json"
        tmp = folder / f".{failed.run_id}.json.tmp"
        tmp.write_text(failed.to_json(), encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        log.warning("run %s: failure could not be queued (%s)", failed.run_id, exc.strerror)


def _flush(con: duckdb.DuckDBPyConnection, db: Path) -> int:
    moved = 0
    for path in _pending_files(db):
        try:
            failed = FailedRun.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError):
            log.warning("queued failure %s is unreadable; left in place", path.name)
            continue
        if _insert(con, failed) is None:
            break
        path.unlink(missing_ok=True)
        moved += 1
    if moved:
        log.info("%d queued failed run(s) moved into the registry", moved)
    return moved
