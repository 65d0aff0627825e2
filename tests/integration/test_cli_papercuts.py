"""The CLI papercuts of issue 13, each with a test that failed on the code before it:

* the demo's `next:` line works as printed after the README's install (venv not activated);
* the README never calls a bare `b12screen` before saying to activate the venv;
* the exit codes are one table (pipeline/errors.py), shown by `run --help` and the README;
* `--log-file` (and `-v`) carry the stage counts and timings when nothing is a terminal;
* developer commands are out of the top-level help but still run by name;
* the demo shows progress while it generates.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import EXIT_CODES, B12ScreenError

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _without_venv_on_path() -> dict[str, str]:
    """The environment after the README's install: the venv's bin is not on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != bin_dir)
    env = dict(os.environ, PATH=path or "/usr/bin:/bin", PYTHONPATH=str(REPO))
    env.pop("VIRTUAL_ENV", None)
    return env


def test_the_demo_next_line_works_as_printed_without_an_activated_venv(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "b12screen"
    if not script.exists():
        pytest.skip("no console script beside this interpreter (not installed with pip)")
    env = _without_venv_on_path()
    demo = subprocess.run(
        [str(script), "demo", "--out", "demo", "--patients", "500"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr
    lines = demo.stdout.splitlines()
    command = lines[lines.index(next(x for x in lines if x.startswith("next:"))) + 1].strip()
    assert not command.startswith("b12screen "), "b12screen is not on PATH here"
    report = subprocess.run(
        command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert report.returncode == 0, (command, report.stderr)
    assert (tmp_path / "demo" / "report" / "population.html").is_file()


def test_command_prefix_is_the_venv_script_unless_b12screen_is_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline import cli as cli_module

    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    for name in ("python", "b12screen"):
        (venv_bin / name).write_text("", encoding="utf-8")
        (venv_bin / name).chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert cli_module.command_prefix() == ".venv/bin/b12screen"
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin")  # activated
    assert cli_module.command_prefix() == "b12screen"


def test_the_readme_says_to_activate_before_a_bare_b12screen_command() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    first_bare = next(i for i, line in enumerate(lines) if line.startswith("b12screen "))
    assert any("activate" in line for line in lines[:first_bare]), lines[first_bare]
    install = lines[0]
    assert "python3 -m venv .venv" in install and ".venv/bin/b12screen demo" in install


def test_the_exit_codes_are_one_table_shown_by_run_help_and_the_readme() -> None:
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    codes = {code for code, _ in EXIT_CODES}
    assert {c.exit_code for c in subclasses(B12ScreenError)} | {B12ScreenError.exit_code} <= codes
    assert len(codes) == len(EXIT_CODES)
    help_text = CliRunner().invoke(cli, ["run", "--help"]).output
    for code, meaning in EXIT_CODES:
        assert re.search(rf"^\s+{code}  {re.escape(meaning)}$", help_text, flags=re.M), code
        assert f"| `{code}` | {meaning} |" in README, code


def test_the_log_file_has_stage_counts_and_timings_when_not_on_a_terminal(
    tmp_path: Path, small_extracts: Path
) -> None:
    log_file = tmp_path / "logs" / "b12screen.log"
    args = ["--extracts", str(small_extracts), "--out", str(tmp_path / "out")]
    args += ["--db", str(tmp_path / "db.duckdb"), "--as-of", "2026-11-24"]
    result = CliRunner().invoke(cli, ["run", *args, "--log-file", str(log_file)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # without -v nothing more on stderr
    text = log_file.read_text(encoding="utf-8")
    for stage in ("prepare", "ingest", "validate", "screen", "outputs", "publish"):
        assert re.search(rf"INFO b12screen: {stage}: done in \d+\.\d s$", text, flags=re.M), stage
    assert "ingest: labs.csv: 5 rows" in text
    assert "validate: labs: 1 of 5 quarantined" in text
    assert "outputs: worklist: 2 patients (2 urgent, 0 high, 0 routine)" in text
    for pid in ("p1", "p2", "p3"):
        assert not re.search(rf"\b{pid}\b", text), pid
    # -v: the same lines on stderr (the issue: one line when not on a terminal)
    verbose = CliRunner().invoke(cli, ["-v", "run", *args])
    assert verbose.exit_code == 0
    assert len(re.findall(r": done in \d+\.\d s", verbose.stderr)) == 6
    # and the published run keeps its own
    assert "outputs: worklist: 2 patients" in (tmp_path / "out" / "run.log").read_text()


def test_developer_commands_are_out_of_the_help_but_run_by_name() -> None:
    help_text = CliRunner().invoke(cli, ["--help"]).output
    listed = re.findall(r"^  (\S+)  ", help_text.split("Commands:", 1)[1], flags=re.M)
    assert "run" in listed and "demo" in listed and "init" in listed and "config" in listed
    assert not {"bench", "bench-incremental", "bench-formats"} & set(listed)
    for name in ("bench", "bench-incremental", "bench-formats"):
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and "Usage: " in result.output, name


def test_the_demo_shows_progress_while_it_generates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline import demo as demo_module
    from pipeline.progress import Progress

    demo_module.generate_population(
        tmp_path / "extracts", n_patients=500, seed=1, progress=Progress(enabled=True)
    )
    err = capsys.readouterr().err
    assert "[1/4] drawing 500 patients and their lab results …" in err
    assert re.search(r"\[4/4\] writing the extracts to .*: done in \d+\.\d s", err)

    seen = {}

    def fake(*args, **kwargs):  # the CLI hands the generator a progress on a terminal
        seen.update(kwargs)
        raise B12ScreenError("stop here")

    monkeypatch.setattr(demo_module, "generate_population", fake)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "d")])
    assert isinstance(seen.get("progress"), Progress)


def test_init_prints_next_commands_that_name_this_environment(tmp_path: Path) -> None:
    result = CliRunner(env=_without_venv_on_path()).invoke(cli, ["init", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    commands = [
        line.strip()
        for line in result.output.splitlines()
        if line.startswith("  ") and not line.strip().startswith("#")
    ]
    assert commands, result.output
    for command in commands:
        word = shlex.split(command)[0]
        assert word == "export" or Path(word).name in ("b12screen", "prefect"), command
        if word != "export":
            assert Path(word).exists() or shutil_which(word), command


def shutil_which(word: str) -> str | None:
    import shutil

    return shutil.which(word)
