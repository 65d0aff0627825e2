"""A week of nightly drops into one database: new files each day, a re-sent file, a corrected
result, a corrupt file, clinician feedback, and a run killed half-way.

Each day is a folder of extracts screened with --as-of that day, against the same database and
the same output folder. Expectations are written by hand from the data below.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from pipeline.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DAY1 = date(2026, 11, 17)
DAYS = {n: DAY1 + timedelta(days=n - 1) for n in range(1, 8)}

PATIENTS = """patient_id,sex,birth_date,site
p1,M,1950-03-01,north
p2,F,1962-07-12,south
p3,F,1971-01-30,north
p4,M,1980-05-05,east
p5,F,1958-09-09,east
"""
LAB_HEADER = "patient_id,collected_at,loinc,test_name,value,unit,result_id\n"
LABS_DAY1 = LAB_HEADER + (
    "p1,2026-11-15,2132-9,,150,pg/mL,r1\n"  # deficient
    "p2,2026-11-16,718-7,,4.5,g/dL,r2\n"  # critical anemia, untested B12
    "p3,2026-11-14,2132-9,,250,pg/mL,r3\n"  # indeterminate, no MMA
    "p4,2026-11-14,2132-9,,500,pg/mL,r4\n"  # normal
    "p5,2026-11-13,2132-9,,160,pg/mL,r5\n"  # deficient (to be corrected)
)


def _write(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True)
    for name, content in files.items():
        path = folder / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return folder


def _run(extracts: Path, day: int, out: Path, db: Path):
    return CliRunner().invoke(
        cli,
        [
            "run",
            "--extracts",
            str(extracts),
            "--out",
            str(out),
            "--as-of",
            DAYS[day].isoformat(),
            "--db",
            str(db),
        ],
    )


def _worklist(out: Path) -> dict[str, dict[str, str]]:
    with (out / "worklist.csv").open(newline="") as f:
        return {row["patient_id"]: row for row in csv.DictReader(f)}


def _resolved(out: Path) -> dict[str, dict[str, str]]:
    with (out / "resolved.csv").open(newline="") as f:
        return {row["patient_id"]: row for row in csv.DictReader(f)}


def _kill_during_screening(extracts: Path, day: int, out: Path, db: Path) -> int:
    script = textwrap.dedent(f"""
        import os
        from datetime import date
        from pathlib import Path
        from pipeline.runner import RunConfig, ScreeningRun, run_screening

        screen = ScreeningRun.screen
        def screen_then_die(self):
            screen(self)
            os._exit(9)  # as if the machine lost power mid-run
        ScreeningRun.screen = screen_then_die
        run_screening(RunConfig(Path({str(extracts)!r}), Path({str(out)!r}),
                                date.fromisoformat({DAYS[day].isoformat()!r}), Path({str(db)!r})))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", script], env=env, check=False).returncode


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("week")
    out, db = base / "out", base / "screening.duckdb"
    seen: dict = {"out": out, "db": db}

    # day 1: the first full extract
    d1 = _write(base / "day1", {"patients.csv": PATIENTS, "labs_d1.csv": LABS_DAY1})
    seen[1] = _run(d1, 1, out, db)
    seen["worklist1"] = _worklist(out)

    # day 2: the same patients file again (skipped by hash), and p3's MMA arrives (normal)
    d2 = _write(
        base / "day2",
        {
            "patients.csv": PATIENTS,
            "labs_d2.csv": LAB_HEADER + "p3,2026-11-18,13964-2,,180,nmol/L,r6\n",
        },
    )
    seen[2] = _run(d2, 2, out, db)
    seen["worklist2"] = _worklist(out)
    seen["resolved2"] = _resolved(out)
    seen["run2"] = json.loads((out / "run.json").read_text())

    # day 3: day 1's lab file re-sent under another name, and a file re-sending r1 with a new row
    d3 = _write(
        base / "day3",
        {
            "labs_d1_again.csv": LABS_DAY1,
            "labs_d3.csv": LAB_HEADER
            + "p1,2026-11-15,2132-9,,150,pg/mL,r1\np4,2026-11-19,718-7,,14.1,g/dL,r7\n",
        },
    )
    seen[3] = _run(d3, 3, out, db)
    seen["run3"] = json.loads((out / "run.json").read_text())

    # day 4: the lab corrects p5's B12 (same result id r5, new value)
    d4 = _write(base / "day4", {"labs_d4.csv": LAB_HEADER + "p5,2026-11-13,2132-9,,410,pg/mL,r5\n"})
    seen[4] = _run(d4, 4, out, db)
    seen["worklist4"] = _worklist(out)
    seen["resolved4"] = _resolved(out)
    seen["outputs4"] = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    # day 5: a corrupt file: the run fails and day 4's outputs stay
    d5 = _write(
        base / "day5",
        {
            "labs_d5.parquet": b"PAR1 this is not parquet",
            "labs_d5b.csv": LAB_HEADER + "p4,2026-11-20,6690-2,,6.2,10*9/L,r8\n",
        },
    )
    seen[5] = _run(d5, 5, out, db)
    seen["outputs5"] = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    # day 6: the fixed lab file, and feedback: p2's critical anemia was treated
    d6 = _write(
        base / "day6",
        {
            "labs_d5b.csv": LAB_HEADER + "p4,2026-11-20,6690-2,,6.2,10*9/L,r8\n",
            "feedback_d6.csv": "patient_id,criterion,action,until,note\n"
            "p2,critical_anemia,treated,2026-12-31,transfused on ward\n"
            "p2,cytopenia_b12_untested,declined,,declines blood tests\n"
            "p1,b12_deficient,reviewed,,letter sent\n",
        },
    )
    seen[6] = _run(d6, 6, out, db)
    seen["worklist6"] = _worklist(out)
    seen["resolved6"] = _resolved(out)
    seen["outputs6"] = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with duckdb.connect(str(db), read_only=True) as con:
        seen["runs6"] = con.execute("SELECT count(*) FROM runs").fetchone()[0]
        seen["labs6"] = con.execute("SELECT count(*) FROM lab_results").fetchone()[0]

    # day 7: the run is killed half-way, then run again, then run once more (idempotence)
    d7 = _write(base / "day7", {"labs_d7.csv": LAB_HEADER + "p4,2026-11-22,777-3,,250,10*9/L,r9\n"})
    seen["kill_code"] = _kill_during_screening(d7, 7, out, db)
    seen["outputs_after_kill"] = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with duckdb.connect(str(db), read_only=True) as con:
        seen["runs_after_kill"] = con.execute("SELECT count(*) FROM runs").fetchone()[0]
        seen["labs_after_kill"] = con.execute("SELECT count(*) FROM lab_results").fetchone()[0]
    seen[7] = _run(d7, 7, out, db)
    seen["worklist7"] = (out / "worklist.csv").read_bytes()
    seen["run7"] = json.loads((out / "run.json").read_text())
    seen["flags7"] = pl.read_parquet(out / "flags.parquet").drop("run_id")
    seen["again"] = _run(d7, 7, out, db)
    seen["worklist7_again"] = (out / "worklist.csv").read_bytes()
    seen["flags7_again"] = pl.read_parquet(out / "flags.parquet").drop("run_id")
    seen["run7_again"] = json.loads((out / "run.json").read_text())
    with duckdb.connect(str(db), read_only=True) as con:
        seen["registry"] = con.execute(
            "SELECT as_of, status, error FROM runs ORDER BY started_at"
        ).fetchall()
        seen["corrections"] = con.execute(
            "SELECT patient_id, old_value, new_value FROM lab_result_corrections"
        ).fetchall()
        seen["r1_rows"] = con.execute(
            "SELECT count(*) FROM lab_results WHERE result_id = 'r1'"
        ).fetchone()[0]
        seen["files"] = dict(
            con.execute("SELECT file_name, rows_read FROM ingested_files").fetchall()
        )
        seen["labs_end"] = con.execute("SELECT count(*) FROM lab_results").fetchone()[0]
    shutil.rmtree(base / "day5")
    return seen


def test_day1_flags_every_planted_patient_as_new(week: dict) -> None:
    assert week[1].exit_code == 0, week[1].output
    wl = week["worklist1"]
    assert set(wl) == {"p1", "p2", "p3", "p5"}
    assert {row["status"] for row in wl.values()} == {"new"}
    assert wl["p2"]["priority"] == "urgent" and wl["p3"]["criteria"] == "b12_indeterminate"


def test_day2_statuses_and_a_resolved_patient(week: dict) -> None:
    wl = week["worklist2"]
    assert set(wl) == {"p1", "p2", "p5"}
    assert {row["status"] for row in wl.values()} == {"persisting"}
    assert week["resolved2"]["p3"]["reason"] == "new result"
    skipped = [f["file"] for f in week["run2"]["skipped_files"]]
    assert skipped == ["patients.csv"], "an identical patients file must be skipped"


def test_day3_resent_file_and_resent_result_are_stored_once(week: dict) -> None:
    assert week[3].exit_code == 0
    assert [f["file"] for f in week["run3"]["skipped_files"]] == ["labs_d1_again.csv"]
    merged = week["run3"]["counts"]["merged"]["labs"]
    assert (merged["new"], merged["resent"], merged["corrected"]) == (1, 1, 0)
    assert week["r1_rows"] == 1


def test_day4_corrected_result_replaces_the_old_one(week: dict) -> None:
    assert week["corrections"] == [("p5", "160", "410")]
    assert "p5" not in week["worklist4"]
    assert week["resolved4"]["p5"]["reason"] == "corrected result"


def test_day5_corrupt_file_fails_and_keeps_day4_outputs(week: dict) -> None:
    assert week[5].exit_code == 3
    assert "labs_d5.parquet" in week[5].stderr
    assert week["outputs5"] == week["outputs4"]


def test_day6_feedback_suppresses_and_annotates(week: dict) -> None:
    wl = week["worklist6"]
    assert "p2" not in wl, "both of p2's action flags are suppressed by feedback"
    assert week["resolved6"]["p2"]["reason"] == "feedback"
    assert "critical_anemia: treated" in week["resolved6"]["p2"]["detail"]
    assert (
        # the worklist names the criterion by its title
        "B12 deficient: reviewed" in wl["p1"]["feedback"] and "letter sent" in wl["p1"]["feedback"]
    )
    assert wl["p1"]["priority"] == "high", "reviewed only annotates"
    assert week["files"]["labs_d5b.csv"] == 1, (
        "the good file of the failed day is ingested on day 6"
    )


def test_day7_killed_run_changes_nothing_and_the_next_run_succeeds(week: dict) -> None:
    assert week["kill_code"] == 9
    assert week["outputs_after_kill"] == week["outputs6"]
    # the killed run's row, still "running" (the next run marks it interrupted)
    assert week["runs_after_kill"] == week["runs6"] + 1
    assert week["labs_after_kill"] == week["labs6"]
    assert week[7].exit_code == 0, week[7].output


def test_same_day_again_gives_identical_outputs_and_duplicates_nothing(week: dict) -> None:
    assert week["again"].exit_code == 0
    first, again = week["run7"]["run_id"].encode(), week["run7_again"]["run_id"].encode()
    assert first != again and week["worklist7"].count(first) > 0  # each row's stamp
    assert week["worklist7_again"] == week["worklist7"].replace(first, again)  # all else equal
    assert week["flags7_again"].equals(week["flags7"])
    assert [f["file"] for f in week["run7_again"]["skipped_files"]] == ["labs_d7.csv"]
    assert week["labs_end"] == week["labs6"] + 1, "day 7 added one result, once"


def test_registry_tells_the_week(week: dict) -> None:
    statuses = [(as_of.isoformat(), status) for as_of, status, _ in week["registry"]]
    assert statuses == [
        ("2026-11-17", "succeeded"),
        ("2026-11-18", "succeeded"),
        ("2026-11-19", "succeeded"),
        ("2026-11-20", "succeeded"),
        ("2026-11-21", "failed"),
        ("2026-11-22", "succeeded"),
        ("2026-11-23", "interrupted"),  # killed during screening
        ("2026-11-23", "succeeded"),
        ("2026-11-23", "succeeded"),
    ]
    interrupted = next(e for _, s, e in week["registry"] if s == "interrupted")
    assert interrupted.startswith("stopped before it finished")
    error = next(e for _, s, e in week["registry"] if s == "failed")
    assert "labs_d5.parquet" in error


def test_deficiency_untreated_appears_when_a_week_has_passed(week: dict) -> None:
    text = week["worklist7"].decode()
    p1 = next(line for line in text.splitlines() if line.startswith("p1,"))
    assert "deficiency_untreated" in p1  # B12 150 on 2026-11-15, 8 days before 2026-11-23


def test_backfill_replays_past_dates_from_the_database(week: dict, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "backfill",
            "--from",
            DAYS[1].isoformat(),
            "--to",
            DAYS[7].isoformat(),
            "--every",
            "3",
            "--out",
            str(tmp_path / "replay"),
            "--db",
            str(week["db"]),
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "replay").iterdir()) == [
        "2026-11-17",
        "2026-11-20",
        "2026-11-23",
    ]
    # Day 1 replayed with today's knowledge: p3's MMA (collected on day 2) is not yet there, p2's
    # feedback (received on day 6) is not yet in force, and p5's B12 has its corrected value.
    assert set(_worklist(tmp_path / "replay" / "2026-11-17")) == {"p1", "p2", "p3"}
    assert "2026-11-17: 3 on the worklist" in result.output
