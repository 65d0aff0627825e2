"""No patient data where it must not be: after a successful and a failed run, by the CLI and by
the Prefect flow, no planted patient id, birth date, lab value or result id appears in any log,
run.json, stderr or stdout line, error message, registry cause, shareable report
(population.*), Prefect artifact or log, or anywhere in the Prefect database and
PREFECT_HOME. The audit report (for the team that runs the screening, docs/reports.md) holds no
id, birth date or result id, but shows values by design (an analyte's distribution and the
values beyond its fences), so it is searched for those only. The outputs for clinicians
(worklists, flags, quarantine) are meant to hold everything and are not searched; the test
checks that they do, so the needles are real.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from pipeline.cli import cli

pytestmark = pytest.mark.reliability  # docs/reliability.md

AS_OF = "2026-11-24"
# Needles no run id, time, count or code can contain by chance. Values have three digits before
# the point: a time's seconds have two ("09:41:11.137208" once held a needle "11.137").
IDS = ("zq7k-31a9", "zq7k-82b4", "zq7k-55c0")
BIRTHS = ("1938-03-17", "1947-09-23", "1952-12-08")
VALUES = ("151.739", "111.37", "387.913", "pending-6613")
RESULT_IDS = ("rid-9a8b7c", "rid-4d5e6f", "rid-1a2b3c", "rid-7e8f9a")
IDENTIFYING = (*IDS, *BIRTHS, *(b.replace("-", "") for b in BIRTHS), *RESULT_IDS)
NEEDLES = (*IDENTIFYING, *VALUES)

PATIENTS = "patient_id,sex,birth_date,site\n" + "".join(
    f"{pid},F,{birth},north\n" for pid, birth in zip(IDS, BIRTHS, strict=True)
)
LABS = (
    "patient_id,collected_at,loinc,test_name,value,unit,result_id\n"
    f"{IDS[0]},2026-11-01,2132-9,,{VALUES[0]},pg/mL,{RESULT_IDS[0]}\n"  # deficient
    f"{IDS[0]},2026-11-01,718-7,,{VALUES[1]},g/L,{RESULT_IDS[1]}\n"
    f"{IDS[1]},2026-11-01,2132-9,,{VALUES[2]},pg/mL,{RESULT_IDS[2]}\n"
    f"{IDS[2]},2026-11-01,2132-9,,{VALUES[3]},pg/mL,{RESULT_IDS[3]}\n"  # quarantined
)


def _texts(*roots: Path) -> dict[str, bytes]:
    """Every file under ``roots`` (a folder or a file), by path."""
    found = {}
    for root in roots:
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in paths:
            found[str(path)] = path.read_bytes()
    return found


def _assert_clean(texts: dict[str, bytes | str], needles: tuple[str, ...] = NEEDLES) -> None:
    assert texts, "nothing searched"
    leaks = []
    for where, text in texts.items():
        data = text if isinstance(text, bytes) else text.encode()
        leaks += [(where, n) for n in needles if n.encode() in data]
    assert not leaks, leaks


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    extracts = tmp_path / "extracts"
    extracts.mkdir()
    (extracts / "patients.csv").write_text(PATIENTS)
    (extracts / "labs.csv").write_text(LABS)
    return {"extracts": extracts, "out": tmp_path / "out", "db": tmp_path / "db.duckdb"}


def test_the_cli_keeps_patient_data_out_of_logs_errors_and_shareable_reports(
    tmp_path: Path, site: dict[str, Path]
) -> None:
    log_file = tmp_path / "cron.log"
    run = ["-v", "run", "--extracts", str(site["extracts"]), "--out", str(site["out"])]
    run += ["--db", str(site["db"]), "--as-of", AS_OF, "--log-file", str(log_file)]
    ok = CliRunner().invoke(cli, run)
    assert ok.exit_code == 0, ok.output
    out = site["out"]
    worklist = (out / "worklist.csv").read_text() + (out / "quarantine.csv").read_text()
    assert IDS[0] in worklist and VALUES[3] in worklist  # the needles are in the data

    # a failed night: an unreadable file and a row-level mess beside it
    (site["extracts"] / "labs_broken.parquet").write_bytes(b"PAR1 " + IDS[1].encode() + b" PAR1")
    failed = CliRunner().invoke(cli, run)
    assert failed.exit_code == 3, failed.output
    report = CliRunner().invoke(
        cli,
        ["report", "--db", str(site["db"]), "--from", AS_OF, "--to", AS_OF]
        + ["--out", str(tmp_path / "report")],
    )
    assert report.exit_code == 0, report.output
    runs = CliRunner().invoke(cli, ["runs", "--db", str(site["db"])])
    assert runs.exit_code == 0, runs.output
    with duckdb.connect(str(site["db"]), read_only=True) as con:
        causes = con.execute("SELECT coalesce(error, '') FROM runs").fetchall()

    period = tmp_path / "report"
    searched = {
        "stdout and stderr": "\n".join(r.output + r.stderr for r in (ok, failed, report, runs)),
        "registry causes": repr(causes),
        **_texts(log_file, site["db"].with_name("db.duckdb.logs"), out / "run.json"),
        **_texts(out / "run.log", *period.glob("population.*")),
    }
    assert any("population.html" in k for k in searched) and any(".logs/" in k for k in searched)
    _assert_clean(searched)
    audits = _texts(out / "audit.html", out / "audit.json", out / "audit", period / "audit.html")
    _assert_clean(audits | _texts(period / "audit.json", period / "audit"), IDENTIFYING)


@pytest.mark.prefect
def test_the_flow_keeps_patient_data_out_of_prefect(
    prefect_harness, tmp_path: Path, site: dict[str, Path]
) -> None:
    import os

    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    from flows.nightly import nightly_screening

    args = (str(site["extracts"]), str(site["out"]), date(2026, 11, 24), str(site["db"]))
    state = nightly_screening(*args, return_state=True)
    assert state.is_completed(), state.message
    (site["extracts"] / "labs_broken.parquet").write_bytes(b"PAR1 " + IDS[1].encode() + b" PAR1")
    failed = nightly_screening(*args, return_state=True)
    assert failed.is_failed()

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    runs = [state.state_details.flow_run_id, failed.state_details.flow_run_id]
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=runs)))
        artifacts = client.read_artifacts()
        flow_runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=runs))
        )
    assert logs and artifacts
    database = Path(PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split("///", 1)[1])
    searched = {
        "prefect logs": "\n".join(log.message for log in logs),
        "prefect artifacts": json.dumps([a.model_dump(mode="json") for a in artifacts]),
        "prefect flow runs": json.dumps([r.model_dump(mode="json") for r in flow_runs]),
        "failed state": str(failed.message) + repr(failed.data),
        **_texts(*database.parent.glob(database.name + "*")),  # the SQLite file and its WAL
        **_texts(Path(os.environ["PREFECT_HOME"])),
        **_texts(site["out"] / "run.json", site["out"] / "run.log"),
        **_texts(site["db"].with_name("db.duckdb.logs")),
    }
    _assert_clean(searched)
