"""Stage progress: on a terminal for people, in the log for everyone else.

Each stage's counts (``note``) and its timing are

* printed to stderr when stdout is a terminal (``enabled``; the contract: quiet otherwise);
* logged at INFO on the ``b12screen`` logger, so ``-v`` and ``--log-file`` show them under cron
  or a worker too;
* kept in ``lines`` (the run's own log file) and by stage in ``report(name)`` (the Prefect
  tasks log them).

Lines carry stage names, file names, counts and timings, never patient data.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

log = logging.getLogger("b12screen")


class Progress:
    def __init__(self, enabled: bool | None = None, total: int = 0) -> None:
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self.total = total
        self.done = 0
        self.timings: dict[str, float] = {}
        self.current: str | None = None  # the stage running (or the one that failed)
        self.lines: list[str] = []
        self._notes: dict[str, list[str]] = {}

    def _keep(self, text: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.lines.append(f"{stamp} {text}")

    def record(self, text: str, *, logged: bool = False) -> None:
        """A line for the run's own log only (logged at INFO unless the caller logged it)."""
        if not logged:
            log.info("%s", text)
        self._keep(text)

    def note(self, text: str) -> None:
        if self.enabled:
            print(f"      {text}", file=sys.stderr, flush=True)
        log.info("%s: %s", self.current or "run", text)
        self._keep(f"{self.current or 'run'}: {text}")
        self._notes.setdefault(self.current or "run", []).append(text)

    def report(self, name: str) -> list[str]:
        """The stage's notes and its timing, as the Prefect task logs them."""
        lines = list(self._notes.get(name, []))
        if name in self.timings:
            lines.append(f"done in {self.timings[name]:.1f} s")
        return lines

    @contextmanager
    def stage(self, name: str, label: str) -> Iterator[None]:
        self.done += 1
        self.current = name
        prefix = f"[{self.done}/{self.total}]" if self.total else "[*]"
        if self.enabled:
            print(f"{prefix} {label} …", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 3)
        log.info("%s: done in %.1f s", name, self.timings[name])
        self._keep(f"{name}: done in {self.timings[name]:.1f} s")
        self.current = None
        if self.enabled:
            print(
                f"{prefix} {label}: done in {self.timings[name]:.1f} s", file=sys.stderr, flush=True
            )
