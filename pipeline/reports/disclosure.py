"""Small-number suppression and confidence intervals for reports shared outside the care team.

The rule (``DisclosureRule``; the defaults follow OpenSAFELY's output checking): a count of
1 to 7 is redacted, every other count is rounded to the nearest multiple of 5, and 0 is shown
as 0.

Redacting a count is not enough when the report also shows a total it adds up to: the total
minus the other members gives it back, and a hidden total is the sum of its shown members.
``protect`` is told which counts add up to which (``Group``) and suppresses more cells until
no group has exactly one hidden cell among its total and its members. The complement is the
shown member with the smallest non-zero count; a zero is never one (it gives nothing away and
hiding it protects nothing). When only zeros are left, the group's total is hidden instead.
Groups are revisited until nothing changes, so in a table with margins a complement hidden in
one direction is protected in the other, and a margin hidden as a member of the grand total's
group is protected in its own group.

Limits: the fixed point guarantees that no group has exactly one hidden cell (so no group
with a shown total has exactly one hidden member) and every shown count is rounded, so a hidden
count cannot be recovered by subtraction along a group. This is the standard heuristic, not a
proof against every attack: solving all the groups of a table together, with counts known to
be non-negative, can narrow the range of a hidden count and in some tables pin it. Which cells
become complements depends on the order of the groups and of their members. Error messages
name keys, never counts.

Rates and their intervals (``rate_with_interval``) are computed from the published, rounded
counts only. An interval computed from true counts would give them back: its width and centre
depend on the exact numerator and denominator that rounding or suppression hid.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

SHOWN = "shown"
REDACTED = "redacted"
COMPLEMENTARY = "complementary"
STATUSES = (SHOWN, REDACTED, COMPLEMENTARY)


@dataclass(frozen=True)
class DisclosureRule:
    """Counts 1..``redact_at_or_below`` are redacted; others are rounded to ``round_to``."""

    redact_at_or_below: int = 7
    round_to: int = 5

    def __post_init__(self) -> None:
        if self.redact_at_or_below < 0:
            raise ValueError(f"redact_at_or_below must be >= 0, got {self.redact_at_or_below}")
        if self.round_to < 1:
            raise ValueError(f"round_to must be >= 1, got {self.round_to}")

    def rounded(self, n: int) -> int:
        """The nearest multiple of ``round_to`` (a tie rounds up)."""
        if n < 0:
            raise ValueError("a count cannot be negative")
        r = self.round_to
        return (2 * n + r) // (2 * r) * r

    def is_small(self, n: int) -> bool:
        """True for a count that must be redacted: 1 <= n <= ``redact_at_or_below``."""
        return 1 <= n <= self.redact_at_or_below


@dataclass(frozen=True)
class Cell:
    """A published count: ``value`` is the rounded count when shown, None when hidden.

    ``status`` is "shown", "redacted" (the count itself is small) or "complementary" (hidden
    so that a redacted count cannot be recovered from a total).
    """

    value: int | None
    status: str

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if (self.value is None) != (self.status != SHOWN):
            raise ValueError("a shown cell has a value and a hidden cell has none")

    @property
    def shown(self) -> bool:
        return self.status == SHOWN


@dataclass(frozen=True)
class Group:
    """The true counts of ``members`` add up to the true count of ``total``."""

    total: Hashable
    members: tuple[Hashable, ...]


def _check_groups(counts: Mapping[K, int], groups: list[Group]) -> None:
    for g in groups:
        missing = [k for k in (g.total, *g.members) if k not in counts]
        if missing:
            raise KeyError(
                f"group with total {g.total!r} names keys missing from counts: {missing!r}"
            )
        if not g.members:
            raise ValueError(f"group with total {g.total!r} has no members")
        if len(set(g.members)) != len(g.members) or g.total in g.members:
            raise ValueError(f"group with total {g.total!r} repeats a key")
        if sum(counts[m] for m in g.members) != counts[g.total]:
            raise ValueError(f"members of the group with total {g.total!r} do not add up to it")


def protect(
    counts: Mapping[K, int], groups: Iterable[Group], rule: DisclosureRule
) -> dict[K, Cell]:
    """Suppress small counts and their complements, round the rest; a Cell for every key.

    Raises KeyError when a group names a key that is not in ``counts``, ValueError for a
    negative count or a group whose members do not add up to its total. The result depends
    only on ``counts``, the order of ``groups`` and the order of each group's members.
    """
    for key, n in counts.items():
        if n < 0:
            raise ValueError(f"count for {key!r} is negative")
    groups = list(groups)
    _check_groups(counts, groups)

    hidden: dict[Hashable, str] = {k: REDACTED for k, n in counts.items() if rule.is_small(n)}
    changed = True
    while changed:
        changed = False
        for g in groups:
            total_hidden = g.total in hidden
            if total_hidden + sum(m in hidden for m in g.members) != 1:
                continue
            candidates = [
                (counts[m], i, m)
                for i, m in enumerate(g.members)
                if m not in hidden and counts[m] > 0
            ]
            if candidates:
                hidden[min(candidates)[2]] = COMPLEMENTARY
            elif not total_hidden:
                hidden[g.total] = COMPLEMENTARY
            else:  # every hidden count is non-zero, so a hidden total has a non-zero member
                raise AssertionError(f"group with total {g.total!r}: no complement available")
            changed = True

    return {
        k: Cell(None, hidden[k]) if k in hidden else Cell(rule.rounded(n), SHOWN)
        for k, n in counts.items()
    }


def wilson_interval(
    successes: int, trials: int, confidence: float = 0.95
) -> tuple[float, float] | None:
    """The Wilson score interval for a proportion, without continuity correction.

    None when ``trials`` is 0. Raises ValueError unless 0 <= successes <= trials and
    0 < confidence < 1.
    """
    if successes < 0 or successes > trials:
        raise ValueError("successes must be between 0 and trials")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    if trials == 0:
        return None
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    n = trials
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At k = 0 and k = n the bound is exactly 0 or 1; the formula leaves rounding noise.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def rate_with_interval(numerator: Cell, denominator: Cell, confidence: float = 0.95) -> dict:
    """A rate and its Wilson interval from the published (rounded) counts only.

    Returns {"rate", "low", "high", "basis"}. The numbers are None when either cell is hidden
    or the denominator is shown as 0, and "basis" says why; otherwise "basis" is
    "rounded counts". A rounded numerator above the rounded denominator is clamped to it.
    Raises ValueError unless 0 < confidence < 1, whichever cells are shown.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    if not numerator.shown:
        basis = "numerator suppressed"
    elif not denominator.shown:
        basis = "denominator suppressed"
    elif denominator.value == 0:
        basis = "no patients"
    else:
        den = denominator.value
        num = min(numerator.value, den)
        low, high = wilson_interval(num, den, confidence)
        return {"rate": num / den, "low": low, "high": high, "basis": "rounded counts"}
    return {"rate": None, "low": None, "high": None, "basis": basis}
