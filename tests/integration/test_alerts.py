"""Alerts end to end: a run (CLI or flow) sends them to a webhook on 127.0.0.1 (apprise's
``json://``), on failure and when the worklist has urgent patients; counts only, never a
patient id of the demo population."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from receiver import Webhook

from pipeline.cli import cli
from pipeline.demo import generate_population
from pipeline.errors import ExtractsError

AS_OF = date(2026, 11, 24)


@pytest.fixture(scope="module")
def demo_extracts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("alerts-demo")
    generate_population(base / "extracts", n_patients=500, as_of=AS_OF, seed=13)
    return base / "extracts"


def _patient_ids(extracts: Path) -> set[str]:
    ids: set[str] = set()
    for path in extracts.glob("patients*"):
        frame = pl.read_csv(path, infer_schema=False)
        column = next(c for c in frame.columns if c.lower() == "patient_id")
        ids |= {v for v in frame[column].to_list() if v}
    return ids


def assert_no_patient_data(message: dict, extracts: Path) -> None:
    text = " ".join(str(v) for v in message.values())
    for pid in _patient_ids(extracts):
        assert not re.search(rf"(?<![\w-]){re.escape(pid)}(?![\w-])", text), pid


def _site(tmp_path: Path, extracts: Path, urls: list[str], **alerts: bool) -> Path:
    switches = "".join(f"{k} = {str(v).lower()}\n" for k, v in alerts.items())
    config = tmp_path / "b12screen.toml"
    config.write_text(
        f'[paths]\nextracts = "{extracts}"\nout = "out"\ndatabase = "screening.duckdb"\n'
        f"[alerts]\nurls = {urls!r}\n{switches}".replace("'", '"'),
        encoding="utf-8",
    )
    return config


def _copy(extracts: Path, to: Path) -> Path:
    to.mkdir()
    for path in extracts.iterdir():
        (to / path.name).write_bytes(path.read_bytes())
    return to


def _run(config: Path, *args: str):
    return CliRunner().invoke(
        cli, ["--config", str(config), "run", "--as-of", AS_OF.isoformat(), *args]
    )


def test_a_run_with_urgent_patients_alerts_with_counts_and_the_output_folder(
    tmp_path: Path, demo_extracts: Path
) -> None:
    with Webhook() as hook:
        config = _site(tmp_path, demo_extracts, [hook.apprise_url])
        result = _run(config)
        assert result.exit_code == 0, result.output
        (message,) = hook.wait_for(1)
    assert message["type"] == "warning"
    out = tmp_path / "out"
    urgent = int(re.search(r"(\d+) urgent", result.output).group(1))
    assert urgent > 0
    assert f"{urgent} urgent patient" in message["title"]
    assert f"{urgent} urgent patients on the worklist" in message["message"]
    assert f"Worklist file: {out / 'worklist.csv'}" in message["message"]
    assert f"Output folder: {out / 'runs'}" in message["message"]
    assert_no_patient_data(message, demo_extracts)


def test_a_failed_run_alerts_with_its_cause_and_its_log_file(
    tmp_path: Path, demo_extracts: Path
) -> None:
    extracts = _copy(demo_extracts, tmp_path / "extracts")
    (extracts / "labs_broken.parquet").write_bytes(b"PAR1 not parquet")
    with Webhook() as hook:
        config = _site(tmp_path, extracts, [hook.apprise_url])
        result = _run(config)
        assert result.exit_code == ExtractsError.exit_code, result.output
        (message,) = hook.wait_for(1)
    assert message["type"] == "failure"
    assert "failed in the ingest stage" in message["message"]
    assert "labs_broken.parquet" in message["message"]
    assert "Nothing was published" in message["message"]
    log_file = Path(re.search(r"Run log: (\S+)", message["message"]).group(1))
    assert log_file.parent == tmp_path / "screening.duckdb.logs"
    log_text = log_file.read_text(encoding="utf-8")
    assert "failed in the ingest stage" in log_text and "Traceback" in log_text
    assert_no_patient_data(message, demo_extracts)


def test_an_unexpected_error_alerts_with_its_type_only(
    tmp_path: Path, small_extracts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.runner

    def broken(models):
        # a bug's message might carry data
        raise ValueError("patient pat-zq7 value 154.37 pg/mL")

    monkeypatch.setattr(pipeline.runner, "screen", broken)
    with Webhook() as hook:
        result = _run(_site(tmp_path, small_extracts, [hook.apprise_url]))
        assert isinstance(result.exception, ValueError)  # a bug keeps its traceback
        (message,) = hook.wait_for(1)
    assert "failed in the screen stage" in message["message"]
    assert "ValueError (unexpected: a bug" in message["message"]
    assert "154.37" not in message["message"] and "pat-zq7" not in message["message"]


def test_alert_switches_and_no_urls_send_nothing(tmp_path: Path, small_extracts: Path) -> None:
    with Webhook() as hook:
        config = _site(tmp_path, small_extracts, [hook.apprise_url], on_urgent=False)
        assert _run(config).exit_code == 0
        config = _site(tmp_path, tmp_path / "missing", [hook.apprise_url], on_failure=False)
        assert _run(config).exit_code == ExtractsError.exit_code
    assert hook.messages == []


# -- the flow ----------------------------------------------------------------------------------
def _flow_log(flow_run_id) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)  # logs are sent in batches
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
    return [entry.message for entry in logs]


@pytest.mark.prefect
def test_the_flow_alerts_and_fails_in_one_line_without_a_traceback(
    prefect_harness, tmp_path: Path, small_extracts: Path
) -> None:
    from flows.nightly import nightly_screening

    with Webhook() as hook:
        config = _site(tmp_path, small_extracts, [hook.apprise_url])
        state = nightly_screening(as_of=AS_OF, config=str(config), return_state=True)
        assert state.is_completed(), state.message
        (urgent,) = hook.wait_for(1)
        log = _flow_log(state.state_details.flow_run_id)

        broken = _copy(small_extracts, tmp_path / "broken")
        (broken / "labs.parquet").write_bytes(b"PAR1 not parquet")
        state = nightly_screening(
            extracts=str(broken), as_of=AS_OF, config=str(config), return_state=True
        )
        assert state.is_failed()
        _, failure = hook.wait_for(2)
        failed_log = _flow_log(state.state_details.flow_run_id)

    assert urgent["type"] == "warning" and "urgent patients on the worklist" in urgent["message"]
    assert_no_patient_data(urgent, small_extracts)
    # every task logged its counts and timing
    for stage in ("prepare", "ingest", "validate", "screen", "outputs", "publish"):
        assert any(line.startswith(f"{stage}: done in ") for line in log), stage
    assert any(re.match(r"ingest: labs\S*: [\d,]+ rows", line) for line in log)
    assert any(line.startswith("outputs: worklist: ") for line in log)

    assert failure["type"] == "failure" and "labs.parquet" in failure["message"]
    assert_no_patient_data(failure, small_extracts)
    text = "\n".join(failed_log)
    assert "Traceback" not in text and 'File "' not in text
    assert not [line for line in failed_log if line.startswith(("Task run failed", "Encountered"))]
    (one_line,) = [line for line in failed_log if re.match(r"run \S+ failed: ", line)]
    assert "labs.parquet" in one_line and ".duckdb.logs/" in one_line
    log_file = Path(one_line.rsplit("; log: ", 1)[1])
    assert "Traceback" in log_file.read_text(encoding="utf-8")


@pytest.mark.prefect
def test_a_flow_that_cannot_start_says_why_in_one_line_and_alerts(
    prefect_harness, tmp_path: Path
) -> None:
    from flows.nightly import nightly_screening

    with Webhook() as hook:
        config = tmp_path / "b12screen.toml"
        config.write_text(
            f'[paths]\nout = "out"\n[alerts]\nurls = ["{hook.apprise_url}"]\n', encoding="utf-8"
        )
        state = nightly_screening(config=str(config), return_state=True)
        assert state.is_failed()
        (message,) = hook.wait_for(1)
        log = _flow_log(state.state_details.flow_run_id)
    (line,) = [x for x in log if re.match(r"run prefect-\S+ failed: ", x)]
    assert line.endswith(
        "failed before the screening run started: no extracts folder: give --extracts, "
        "B12SCREEN_EXTRACTS or paths.extracts in b12screen.toml"
    )
    assert "no extracts folder" in message["message"] and message["type"] == "failure"


@pytest.mark.prefect
def test_a_monthly_report_that_fails_alerts_with_its_cause(
    prefect_harness, tmp_path: Path, small_extracts: Path
) -> None:
    """The monthly flow has a failure alert too: its month and one-line cause, no data."""
    from flows.monthly import monthly_audit

    with Webhook() as hook:
        config = _site(tmp_path, small_extracts, [hook.apprise_url])
        # no database yet: the report of the month cannot be written
        state = monthly_audit(
            db=str(tmp_path / "missing.duckdb"),
            out=str(tmp_path / "audit"),
            month="2026-10",
            retry_delays_s=[0],
            config=str(config),
            return_state=True,
        )
        assert state.is_failed()
        (failure,) = hook.wait_for(1)
    assert failure["type"] == "failure"
    assert "monthly audit report 2026-10 was not written" in failure["message"]
    assert "database not found" in failure["message"]
    assert str(tmp_path / "audit") in failure["message"]
    assert_no_patient_data(failure, small_extracts)
