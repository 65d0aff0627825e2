"""Stage progress for people at a terminal; silent when stdout is not a terminal.

Progress lines carry stage names, counts and timings, never patient data.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Progress:
    def __init__(self, enabled: bool | None = None, total: int = 0) -> None:
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self.total = total
        self.done = 0
        self.timings: dict[str, float] = {}

    def note(self, text: str) -> None:
        if self.enabled:
            print(f"      {text}", file=sys.stderr, flush=True)

    @contextmanager
    def stage(self, name: str, label: str) -> Iterator[None]:
        self.done += 1
        prefix = f"[{self.done}/{self.total}]" if self.total else "[*]"
        if self.enabled:
            print(f"{prefix} {label} …", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 3)
        if self.enabled:
            print(
                f"{prefix} {label}: done in {self.timings[name]:.1f} s", file=sys.stderr, flush=True
            )
