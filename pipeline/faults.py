"""Named points where the reliability tests kill a run (tests/integration/test_kills.py).

``B12SCREEN_KILL_AT=<point>`` in the environment ends the process at once (exit 137, as a
SIGKILL would, with no cleanup) when a run reaches that point. Unset, a point costs one
dictionary lookup. The points are the stage boundaries and each step of publishing.
"""

from __future__ import annotations

import os

POINTS = (
    "after-prepare",
    "after-ingest",
    "after-validate",
    "after-screen",
    "after-outputs",
    "after-commit",
    "after-move",
    "after-switch",
)


def point(name: str) -> None:
    if os.environ.get("B12SCREEN_KILL_AT") == name:
        os._exit(137)
