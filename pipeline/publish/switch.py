"""Publishing a folder of outputs in one atomic step.

    OUT/
      runs/<run id>/        each published run's complete folder (the current and the previous)
      current -> runs/<id>  the published run: a symbolic link replaced in one rename
      worklist.csv -> current/worklist.csv, audit -> current/audit, ...   (stable links)

A run builds its outputs in ``OUT/.b12screen-building-<id>/``; once the database has committed,
the folder is renamed into ``runs/`` and ``current`` is switched to it with one ``rename()``,
which POSIX makes atomic. A reader who opens ``OUT/current/`` (or any file through the stable
links) sees the previous run or the new one, never a mix, whenever the run is killed.

A run killed after its commit but before its switch leaves a complete folder that the registry
records as succeeded: :func:`repair` publishes it at the start of the next run. The folder is
held by a lock (flock on the ``OUT`` folder itself) from the start of a run to its end, so two runs (from
two databases) can never write into one ``--out`` at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline import faults
from pipeline.errors import DatabaseBusyError, OutputError

CURRENT = "current"
BUILDING_PREFIX = ".b12screen-building-"


class OutputBusyError(DatabaseBusyError):
    """Another run is writing into the same output folder."""


@contextlib.contextmanager
def holding(out: Path) -> Iterator[None]:
    """Hold ``out`` for one run; a second run into it stops at once (transient, exit 6)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = os.open(out, os.O_RDONLY)  # the folder itself is locked: no file is left
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {out}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputBusyError(
                f"output folder {out} is being written by another run; try again when it has "
                "finished"
            ) from None
        yield
    finally:
        os.close(handle)  # closing releases the lock


def building_folder(out: Path, release: str) -> Path:
    return out / f"{BUILDING_PREFIX}{release}"


def current_release(out: Path, releases: str = "runs") -> str | None:
    link = out / CURRENT
    if not link.is_symlink():
        return None
    target = Path(os.readlink(link))
    return target.name if target.parent.name == releases else None


def publish(building: Path, out: Path, *, releases: str = "runs", keep: int = 2) -> Path:
    """Move ``building`` into ``out/<releases>/`` and make it the current one, atomically.

    Returns the release folder. ``keep`` releases (the new one included) are kept.
    """
    release = building.name.removeprefix(BUILDING_PREFIX)
    folder = out / releases / release
    folder.parent.mkdir(exist_ok=True)
    os.replace(building, folder)
    faults.point("after-move")
    switch(out, release, releases=releases)
    faults.point("after-switch")
    _prune(out / releases, keep=keep, current=release)
    return folder


def switch(out: Path, release: str, *, releases: str = "runs") -> None:
    """Point ``out/current`` at ``releases/<release>`` in one rename, then the stable links."""
    os.replace(_new_link(out, CURRENT, f"{releases}/{release}"), out / CURRENT)
    _stable_links(out, out / releases / release)


def _new_link(out: Path, name: str, target: str) -> Path:
    """A symbolic link to ``target`` made aside, for one ``os.replace`` onto ``out/name``."""
    tmp = out / f".{name}.link.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    return tmp


def _by_age(releases: Path) -> list[Path]:
    """The release folders, oldest first."""
    return sorted((p for p in releases.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime_ns)


def _stable_links(out: Path, folder: Path) -> None:
    """``out/<name> -> current/<name>`` for every output of the current release.

    Each link is made once and never changes (it follows ``current``); a file left by an older
    layout is replaced by its link in one rename; links to outputs the current release no
    longer has (a worklist dropped from the rules) are removed.
    """
    names = {p.name for p in folder.iterdir()}
    for name in sorted(names):
        path = out / name
        wanted = f"{CURRENT}/{name}"
        if path.is_symlink() and os.readlink(path) == wanted:
            continue
        tmp = _new_link(out, name, wanted)
        if path.is_dir() and not path.is_symlink():  # an older layout's real folder
            aside = out / f".{name}.previous"
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(path, aside)
            os.replace(tmp, path)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(tmp, path)
    for path in out.iterdir():
        if path.is_symlink() and path.name != CURRENT:
            target = os.readlink(path)
            if target.startswith(f"{CURRENT}/") and target.split("/", 1)[1] not in names:
                path.unlink()


def _prune(releases: Path, *, keep: int, current: str) -> None:
    folders = _by_age(releases)
    old = [p for p in folders if p.name != current][: max(len(folders) - keep, 0)]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)


def repair(out: Path, committed: Callable[[str], bool], *, releases: str = "runs") -> list[str]:
    """Finish what a killed run left: a building folder whose run committed is published
    (if it is newer than the current release), any other building folder is removed.
    Returns the releases published. Call it while :func:`holding` the folder."""
    published: list[str] = []
    if not out.is_dir():
        return published
    for building in sorted(out.glob(f"{BUILDING_PREFIX}*")):
        release = building.name.removeprefix(BUILDING_PREFIX)
        if building.is_dir() and committed(release):
            publish(building, out, releases=releases)
            published.append(release)
        else:
            shutil.rmtree(building, ignore_errors=True)
    # killed between moving its folder into place and switching: the newest release is not
    # the current one
    folders = _by_age(out / releases)
    if (
        folders
        and folders[-1].name != current_release(out, releases)
        and committed(folders[-1].name)
    ):
        switch(out, folders[-1].name, releases=releases)
        published.append(folders[-1].name)
    return published


@contextlib.contextmanager
def built_aside(out: Path, what: str) -> Iterator[Path]:
    """A folder inside ``out`` to build a report's files in; on success they replace their
    namesakes in ``out`` (:func:`move_into`), on any failure none of them does. The period and
    monthly reports publish this way (a nightly run has its own release folders, above).
    ``what`` names the report in the one-line error a folder that cannot be written gives."""
    out = Path(out)
    # not BUILDING_PREFIX: a nightly run's repair() must never take a report for a run
    building = out / f".b12screen-report-{what.replace(' ', '-')}-{os.getpid()}"
    try:
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        yield building
        move_into(building, out)
    except OSError as exc:
        raise OutputError(f"cannot write the {what} to {out}: {exc.strerror}") from None
    finally:
        shutil.rmtree(building, ignore_errors=True)


def move_into(staging: Path, out: Path) -> None:
    """Move every file and folder built in ``staging`` over its namesake in ``out``, then
    remove ``staging``. One rename each; a folder cannot replace a non-empty one, so the old
    one is moved aside first."""
    for path in sorted(staging.iterdir()):
        if path.is_file():
            os.replace(path, out / path.name)
    for path in sorted(p for p in staging.iterdir() if p.is_dir()):
        old = out / f".{path.name}.previous"
        shutil.rmtree(old, ignore_errors=True)
        if (out / path.name).exists():
            os.replace(out / path.name, old)
        os.replace(path, out / path.name)
        shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
