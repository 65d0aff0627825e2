"""Acceptance: a site run as a service, as the README and `b12screen init` say.

`b12screen init site/`, then the commands it prints (a real Prefect server on 127.0.0.1 on a
free port instead of 4200, a process work pool, `prefect deploy` of the site's prefect.yaml, a
worker), then a triggered nightly run that completes, then one that fails; the alerts of both
reach a webhook on 127.0.0.1, with counts and no patient id.

It takes one to two minutes (a server, a worker and two flow runs in their own processes), so it
runs only when B12SCREEN_SERVICE_TEST=1 (marked ``service``):

    B12SCREEN_SERVICE_TEST=1 .venv/bin/pytest -q tests/acceptance/test_service.py
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from receiver import Webhook

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(
        os.environ.get("B12SCREEN_SERVICE_TEST") != "1",
        reason="a real Prefect server and worker (1-2 min): set B12SCREEN_SERVICE_TEST=1",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path) -> dict[str, str]:
    """After the README's install: the venv's bin not on PATH; this checkout's code first."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != bin_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "B12SCREEN_"))}
    env.update(PATH=path, PYTHONPATH=str(REPO), PREFECT_HOME=str(tmp_path / "prefect-home"))
    return env


def _printed(output: str) -> list[str]:
    return [
        line.strip()
        for line in output.splitlines()
        if line.startswith("  ") and not line.strip().startswith("#")
    ]


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "the Prefect server stopped"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("the Prefect server did not come up")


def _run(command: str, env: dict[str, str], cwd: Path, timeout: float = 240):
    return subprocess.run(
        command,
        shell=True,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_init_then_the_printed_commands_run_the_nightly_with_alerts(
    tmp_path: Path, small_extracts: Path
) -> None:
    script = Path(sys.executable).parent / "b12screen"
    if not script.exists():
        pytest.skip("no console script beside this interpreter")
    env = _env(tmp_path)
    init = _run(f"{shlex.quote(str(script))} init site --timezone UTC", env, tmp_path)
    assert init.returncode == 0, init.stderr
    commands = _printed(init.stdout)
    site = tmp_path / "site"
    for path in small_extracts.iterdir():
        (site / "extracts" / path.name).write_bytes(path.read_bytes())

    port = _free_port()
    export = next(c for c in commands if c.startswith("export "))
    for assignment in shlex.split(export.split("#")[0])[1:]:
        key, value = assignment.split("=", 1)
        env[key] = value.replace(":4200", f":{port}")
    server_cmd = next(c for c in commands if " server start " in c).replace("4200", str(port))
    pool, deploy, worker_cmd, trigger = (
        next(c for c in commands if " work-pool create " in c),
        next(c for c in commands if " deploy " in c),
        next(c for c in commands if " worker start " in c),
        next(c for c in commands if " deployment run " in c),
    )

    with Webhook() as hook:
        config = site / "b12screen.toml"
        text = config.read_text(encoding="utf-8")
        config.write_text(
            text.replace("urls = []", f'urls = ["{hook.apprise_url}"]'), encoding="utf-8"
        )
        logs = tmp_path / "logs"
        logs.mkdir()
        server = subprocess.Popen(
            server_cmd,
            shell=True,
            env=env,
            cwd=tmp_path,
            stdout=(logs / "server.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = None
        try:
            _wait_healthy(f"http://127.0.0.1:{port}/api/health", server)
            for command in (pool, deploy):
                done = _run(command, env, tmp_path)
                assert done.returncode == 0, (command, done.stdout, done.stderr)
            worker = subprocess.Popen(
                worker_cmd,
                shell=True,
                env=env,
                cwd=tmp_path,
                stdout=(logs / "worker.log").open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            ran = _run(f"{trigger} -p as_of='\"2026-11-24\"' --watch-timeout 200", env, tmp_path)
            assert ran.returncode == 0, (ran.stdout[-2000:], (logs / "worker.log").read_text())
            (urgent,) = hook.wait_for(1)

            (site / "extracts" / "labs_broken.parquet").write_bytes(b"PAR1 not parquet")
            failed = _run(f"{trigger} -p as_of='\"2026-11-25\"' --watch-timeout 200", env, tmp_path)
            assert failed.returncode != 0
            _, failure = hook.wait_for(2)
        finally:
            for process in (worker, server):
                if process is not None:
                    os.killpg(process.pid, 15)
                    process.wait(timeout=30)

    published = site / "worklists"
    assert (published / "worklist.csv").is_file() and (published / "run.log").is_file()
    assert "2 urgent patients on the worklist" in urgent["message"]
    assert str(published / "worklist.csv") in urgent["message"]
    assert failure["type"] == "failure" and "labs_broken.parquet" in failure["message"]
    run_log = Path(re.search(r"Run log: (\S+)", failure["message"]).group(1))
    assert run_log.is_relative_to(site) and "Traceback" in run_log.read_text()
    for message in (urgent, failure):
        for pid in ("p1", "p2", "p3"):
            assert not re.search(rf"(?<![\w-]){pid}(?![\w-])", json.dumps(message)), pid
