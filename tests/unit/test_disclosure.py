"""Disclosure control (pipeline/reports/disclosure.py): suppression, rounding and Wilson intervals.

- the rule at its thresholds (default 7/5 and a custom 10/10), worked out by hand;
- complementary suppression on 1-D groups and on 2x2 tables with margins, every status
  derived by hand in the comments next to the case;
- Hypothesis: on random 1-D and 2-D tables with margins and random rules, small counts are
  never shown, no group with a shown total has exactly one hidden member, shown values are
  rounded correctly and zeros are shown as 0;
- brute force over 2x2 tables with margins: no hidden count follows from one group's equation
  and the shown true counts;
- wilson_interval against Newcombe (1998), Table I, method 3, and its properties;
- rate_with_interval reads only the published counts.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.reports.disclosure import (
    Cell,
    DisclosureRule,
    Group,
    protect,
    rate_with_interval,
    wilson_interval,
)

DEFAULT = DisclosureRule()


def one_d(total: int | None, members: list[int]) -> tuple[dict, list[Group]]:
    """A total ("all") and its members ("m0", "m1", ...); the total defaults to their sum."""
    counts = {f"m{i}": n for i, n in enumerate(members)}
    counts["all"] = sum(members) if total is None else total
    return counts, [Group("all", tuple(f"m{i}" for i in range(len(members))))]


def two_d(inner: list[list[int]]) -> tuple[dict, list[Group]]:
    """Inner cells ("cell", i, j), row and column margins, and a grand total "all"."""
    rows, cols = len(inner), len(inner[0])
    counts: dict = {("cell", i, j): inner[i][j] for i in range(rows) for j in range(cols)}
    for i in range(rows):
        counts[("row", i)] = sum(inner[i])
    for j in range(cols):
        counts[("col", j)] = sum(inner[i][j] for i in range(rows))
    counts["all"] = sum(map(sum, inner))
    groups = [Group(("row", i), tuple(("cell", i, j) for j in range(cols))) for i in range(rows)]
    groups += [Group(("col", j), tuple(("cell", i, j) for i in range(rows))) for j in range(cols)]
    groups.append(Group("all", tuple(("row", i) for i in range(rows))))
    groups.append(Group("all", tuple(("col", j) for j in range(cols))))
    return counts, groups


def statuses(cells: dict) -> dict:
    return {k: (c.status, c.value) for k, c in cells.items()}


S, R, C = "shown", "redacted", "complementary"


# --- the rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, (S, 0)), (1, (R, None)), (7, (R, None)), (8, (S, 10)), (12, (S, 10)), (13, (S, 15))],
)
def test_default_threshold(n, expected):
    counts = {"x": n}
    assert statuses(protect(counts, [], DEFAULT)) == {"x": expected}


@pytest.mark.parametrize(
    ("n", "expected"),
    # 10 is at the threshold; 11 rounds down to 10; 15 is a tie and rounds up; 14 rounds down.
    [(0, (S, 0)), (10, (R, None)), (11, (S, 10)), (14, (S, 10)), (15, (S, 20))],
)
def test_custom_threshold(n, expected):
    rule = DisclosureRule(redact_at_or_below=10, round_to=10)
    assert statuses(protect({"x": n}, [], rule)) == {"x": expected}


def test_rule_helpers():
    assert [DEFAULT.rounded(n) for n in (0, 2, 3, 7, 8, 22, 23)] == [0, 0, 5, 5, 10, 20, 25]
    assert [DisclosureRule(round_to=1).rounded(n) for n in (0, 1, 13)] == [0, 1, 13]
    assert [DEFAULT.is_small(n) for n in (-1, 0, 1, 7, 8)] == [False, False, True, True, False]
    assert not DisclosureRule(redact_at_or_below=0).is_small(1)


@pytest.mark.parametrize("kwargs", [{"redact_at_or_below": -1}, {"round_to": 0}, {"round_to": -5}])
def test_rule_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        DisclosureRule(**kwargs)


def test_cell_rejects_inconsistent_values():
    for value, status in [(None, S), (5, R), (5, C), (5, "hidden")]:
        with pytest.raises(ValueError):
            Cell(value, status)


# --- complementary suppression, 1-D ----------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "members", "expected"),
    [
        # 3 is small; the smallest non-zero other member (40) hides it; 57 -> 55; total shown.
        (100, [3, 40, 57], {"m0": (R, None), "m1": (C, None), "m2": (S, 55), "all": (S, 100)}),
        # the zero is never a complement, so 97 is hidden although it is the larger.
        (100, [3, 0, 97], {"m0": (R, None), "m1": (S, 0), "m2": (C, None), "all": (S, 100)}),
        # the total equals the small member, so it is small and redacted itself.
        (3, [3, 0], {"m0": (R, None), "m1": (S, 0), "all": (R, None)}),
        # likewise: 5 is small, the total (5) is small, the zeros stay shown.
        (5, [5, 0, 0], {"m0": (R, None), "m1": (S, 0), "m2": (S, 0), "all": (R, None)}),
        # 3 is small; the only other member (9) is hidden with it; total 12 -> 10.
        (12, [9, 3], {"m0": (C, None), "m1": (R, None), "all": (S, 10)}),
        # two small members protect each other: no complement; 50 -> 50, 57 -> 55.
        (57, [3, 4, 50], {"m0": (R, None), "m1": (R, None), "m2": (S, 50), "all": (S, 55)}),
        # a tie on the smallest non-zero count goes to the member listed first.
        (42, [2, 20, 20], {"m0": (R, None), "m1": (C, None), "m2": (S, 20), "all": (S, 40)}),
        # nothing small: nothing hidden, everything rounded (0, 8 -> 10, 9 -> 10, 17 -> 15).
        (17, [0, 8, 9], {"m0": (S, 0), "m1": (S, 10), "m2": (S, 10), "all": (S, 15)}),
    ],
)
def test_complementary_1d(total, members, expected):
    counts, groups = one_d(total, members)
    assert statuses(protect(counts, groups, DEFAULT)) == expected


def test_complement_moves_to_total_when_only_zeros_are_left():
    # "sub" = [x=3, y=40] and "ytot" = [y=40, w=0]. 3 is small, so its only non-zero partner
    # y is the complement in "sub" (43 -> 45, shown). In "ytot", y is then the one hidden
    # member and the other member is a zero, which is never a complement: ytot itself is hidden.
    counts = {"x": 3, "y": 40, "sub": 43, "w": 0, "ytot": 40}
    groups = [Group("sub", ("x", "y")), Group("ytot", ("y", "w"))]
    assert statuses(protect(counts, groups, DEFAULT)) == {
        "x": (R, None),
        "y": (C, None),
        "sub": (S, 45),
        "w": (S, 0),
        "ytot": (C, None),
    }


# --- complementary suppression, 2x2 with margins ---------------------------------------------


def test_2d_fixed_point_protects_both_directions():
    # age band x sex:      F    M  | total
    #              A0      3   20  |  23
    #              A1     30   40  |  70
    #              total  33   60  |  93
    # Groups in order: row 0, row 1, col 0, col 1, all = rows, all = cols.
    # 3 is small. Row 0 has one hidden member: hide 20 (complement). Col 0 has one hidden
    # member (3): hide 30. Col 1 now has one hidden member (20): hide 40. Row 1 has two hidden
    # members, so the next pass changes nothing. Margins are shown, rounded: 23 -> 25, 70,
    # 33 -> 35, 60, 93 -> 95. Without the second direction, 40 would have been 60 - 20.
    counts, groups = two_d([[3, 20], [30, 40]])
    assert statuses(protect(counts, groups, DEFAULT)) == {
        ("cell", 0, 0): (R, None),
        ("cell", 0, 1): (C, None),
        ("cell", 1, 0): (C, None),
        ("cell", 1, 1): (C, None),
        ("row", 0): (S, 25),
        ("row", 1): (S, 70),
        ("col", 0): (S, 35),
        ("col", 1): (S, 60),
        "all": (S, 95),
    }


def test_2d_zero_cell_pushes_suppression_to_the_margins():
    #                      F    M  | total
    #              A0      3   20  |  23
    #              A1      0   40  |  40
    #              total   3   60  |  63
    # Primary: cell(0,0) = 3 and col 0 = 3 are small.
    # Pass 1: row 0 -> hide 20 (cell 0,1). Row 1: nothing hidden yet. Col 0: total hidden,
    #   skip. Col 1: one hidden (20) -> hide 40 (cell 1,1). all = rows: nothing hidden.
    #   all = cols: col 0 hidden, col 1 (60) shown -> hide col 1.
    # Pass 2: row 1 has one hidden member (40) and the other is 0 -> hide row 1's total (40).
    #   all = rows: row 1 hidden, row 0 (23) shown -> hide row 0. Everything else settled.
    # Pass 3: no change. Only the zero and the grand total (63 -> 65) are shown.
    counts, groups = two_d([[3, 20], [0, 40]])
    assert statuses(protect(counts, groups, DEFAULT)) == {
        ("cell", 0, 0): (R, None),
        ("cell", 0, 1): (C, None),
        ("cell", 1, 0): (S, 0),
        ("cell", 1, 1): (C, None),
        ("row", 0): (C, None),
        ("row", 1): (C, None),
        ("col", 0): (R, None),
        ("col", 1): (C, None),
        "all": (S, 65),
    }


def test_2d_hidden_margin_is_protected_in_its_own_group():
    #                      F    M  | total
    #              A0      0    1  |   1
    #              A1      8    0  |   8
    #              total   8    1  |   9
    # Primary: cell(0,1), row 0 and col 1 (all 1) are small.
    # Pass 1: row 0 and col 1 each have two hidden cells (total and cell 0,1). Row 1 and col 0
    #   have none. all = rows: row 0 hidden -> hide row 1 (8). all = cols: hide col 0 (8).
    # Pass 2: row 1 is now hidden while its members 8 and 0 are shown, so row 1 = 8 + 0 and
    #   then row 0 = 9 - 8 would give the 1 back: hide cell(1,0) (8, the only non-zero).
    #   Col 0 then has two hidden cells (its total and cell 1,0). Pass 3: no change.
    counts, groups = two_d([[0, 1], [8, 0]])
    assert statuses(protect(counts, groups, DEFAULT)) == {
        ("cell", 0, 0): (S, 0),
        ("cell", 0, 1): (R, None),
        ("cell", 1, 0): (C, None),
        ("cell", 1, 1): (S, 0),
        ("row", 0): (R, None),
        ("row", 1): (C, None),
        ("col", 0): (C, None),
        ("col", 1): (R, None),
        "all": (S, 10),
    }


# --- errors and determinism ------------------------------------------------------------------


def test_negative_count_raises():
    with pytest.raises(ValueError, match="negative"):
        protect({"x": -1}, [], DEFAULT)


def test_group_key_missing_from_counts_raises():
    with pytest.raises(KeyError, match="missing"):
        protect({"all": 10, "a": 10}, [Group("all", ("a", "b"))], DEFAULT)
    with pytest.raises(KeyError, match="missing"):
        protect({"a": 10}, [Group("all", ("a",))], DEFAULT)


def test_inconsistent_group_raises_without_naming_counts():
    with pytest.raises(ValueError, match="do not add up") as info:
        protect({"all": 13, "a": 3, "b": 9}, [Group("all", ("a", "b"))], DEFAULT)
    assert not any(ch.isdigit() for ch in str(info.value))


@pytest.mark.parametrize(
    "group", [Group("all", ()), Group("all", ("a", "a")), Group("all", ("all", "a"))]
)
def test_malformed_group_raises(group):
    with pytest.raises(ValueError):
        protect({"all": 0, "a": 0}, [group], DEFAULT)


def test_deterministic_and_keyed_like_counts():
    counts, groups = two_d([[3, 20, 11], [30, 0, 5], [8, 9, 50]])
    first = protect(counts, groups, DEFAULT)
    assert list(first) == list(counts)
    assert protect(counts, iter(groups), DEFAULT) == first  # a one-shot iterable is fine


# --- properties ------------------------------------------------------------------------------

COUNT = st.one_of(st.integers(0, 9), st.integers(0, 60))
RULES = st.one_of(
    st.just(DEFAULT),
    st.builds(DisclosureRule, redact_at_or_below=st.integers(0, 10), round_to=st.integers(1, 10)),
)
TABLES = st.one_of(
    st.lists(COUNT, min_size=1, max_size=6).map(lambda ms: one_d(None, ms)),
    st.integers(1, 4)
    .flatmap(
        lambda cols: st.lists(st.lists(COUNT, min_size=cols, max_size=cols), min_size=1, max_size=4)
    )
    .map(two_d),
)


def check_protected(counts: dict, groups: list[Group], rule: DisclosureRule, cells: dict):
    assert set(cells) == set(counts)
    for key, n in counts.items():
        cell = cells[key]
        if rule.is_small(n):  # (a)
            assert cell.status == "redacted"
        if n == 0:  # (d): a zero is never hidden, and shows as 0
            assert cell == Cell(0, "shown")
        if cell.status == "shown":  # (c)
            assert cell.value % rule.round_to == 0
            assert abs(cell.value - n) <= rule.round_to / 2
        else:
            assert cell.value is None
    for g in groups:
        hidden = sum(cells[m].status != "shown" for m in g.members)
        if cells[g.total].status == "shown":  # (b)
            assert hidden != 1
        else:  # a hidden total is not the sum of shown members
            assert hidden >= 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TABLES, RULES)
def test_protect_properties(table, rule):
    counts, groups = table
    check_protected(counts, groups, rule, protect(counts, groups, rule))


@settings(max_examples=100, deadline=None)
@given(TABLES, st.randoms(use_true_random=False))
def test_properties_hold_in_any_group_order(table, rnd):
    counts, groups = table
    rnd.shuffle(groups)
    check_protected(counts, groups, DEFAULT, protect(counts, groups, DEFAULT))


# --- brute force: recovery by subtraction along one group -------------------------------------


def recoverable(counts: dict, groups: list[Group], cells: dict) -> list:
    """Hidden keys that are the only unknown in some group's equation (total = sum members)."""
    found = []
    for g in groups:
        unknown = [k for k in (g.total, *g.members) if cells[k].status != "shown"]
        if len(unknown) == 1:
            # The equation gives it from shown true counts: check that it really would.
            (k,) = unknown
            known = sum(counts[m] for m in g.members if m != k)
            derived = known if k == g.total else counts[g.total] - known
            assert derived == counts[k]
            found.append(k)
    return found


@pytest.mark.parametrize("rule", [DEFAULT, DisclosureRule(redact_at_or_below=3, round_to=1)])
def test_no_single_group_recovery_2x2(rule):
    values = [*range(10), 12, 20, 45]
    checked = hidden_tables = 0
    for a, b, c, d in itertools.product(values, repeat=4):
        counts, groups = two_d([[a, b], [c, d]])
        cells = protect(counts, groups, rule)
        assert recoverable(counts, groups, cells) == [], (a, b, c, d)
        checked += 1
        hidden_tables += any(cell.status != "shown" for cell in cells.values())
    assert checked == len(values) ** 4
    assert hidden_tables > checked // 2  # the search did exercise suppression


def test_recovery_check_can_fail():
    # Primary suppression alone leaves 3 = 100 - 40 - 57 recoverable: the check sees it.
    counts, groups = one_d(100, [3, 40, 57])
    primary = {
        k: Cell(None, "redacted") if DEFAULT.is_small(n) else Cell(n, "shown")
        for k, n in counts.items()
    }
    assert recoverable(counts, groups, primary) == ["m0"]


# --- Wilson interval ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    # Newcombe RG. Stat Med 1998;17:857-872, Table I, method 3 (score, no continuity correction).
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_reference_values(k, n, low, high):
    got = wilson_interval(k, n)
    assert (round(got[0], 4), round(got[1], 4)) == (low, high)


def test_wilson_by_hand_for_half():
    # k = 5, n = 10, z = 1.959964: centre 0.5, half-width z*sqrt(0.025 + z^2/400)/(1 + z^2/10).
    z = 1.959963984540054
    half = z * math.sqrt(0.025 + z * z / 400) / (1 + z * z / 10)
    assert wilson_interval(5, 10) == pytest.approx((0.5 - half, 0.5 + half), abs=1e-12)


@given(st.integers(1, 2000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_estimate(kn):
    k, n = kn
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n - 1), st.just(n))))
def test_wilson_monotone_in_successes(kn):
    k, n = kn
    lo1, hi1 = wilson_interval(k, n)
    lo2, hi2 = wilson_interval(k + 1, n)
    assert lo2 >= lo1 and hi2 >= hi1


def test_wilson_narrows_as_trials_grow():
    widths = [hi - lo for lo, hi in (wilson_interval(n // 2, n) for n in range(2, 2002, 2))]
    assert all(w2 < w1 for w1, w2 in itertools.pairwise(widths))


def test_wilson_wider_at_higher_confidence():
    lo90, hi90 = wilson_interval(15, 148, 0.90)
    lo99, hi99 = wilson_interval(15, 148, 0.99)
    assert lo99 < lo90 and hi99 > hi90


def test_wilson_edge_cases_and_errors():
    assert wilson_interval(0, 0) is None
    assert wilson_interval(7, 7)[1] == 1.0
    for args in [(-1, 5), (6, 5), (1, 0), (0, -1), (1, 5, 0.0), (1, 5, 1.0), (1, 5, 1.5)]:
        with pytest.raises(ValueError):
            wilson_interval(*args)


# --- rates from published counts ---------------------------------------------------------------


def published(numerator: int, denominator: int) -> tuple[Cell, Cell]:
    cells = protect({"num": numerator, "den": denominator}, [], DEFAULT)
    return cells["num"], cells["den"]


NONE = {"rate": None, "low": None, "high": None}


def test_rate_uses_rounded_counts():
    num, den = published(12, 103)  # shown as 10 and 105
    assert (num.value, den.value) == (10, 105)
    got = rate_with_interval(num, den)
    assert got["basis"] == "rounded counts"
    assert got["rate"] == pytest.approx(10 / 105)
    assert (got["low"], got["high"]) == wilson_interval(10, 105)
    assert (got["low"], got["high"]) != wilson_interval(12, 103)


@pytest.mark.parametrize(
    ("numerator", "denominator", "basis"),
    [
        (3, 103, "numerator suppressed"),
        (12, 5, "denominator suppressed"),
        (3, 5, "numerator suppressed"),
        (0, 0, "no patients"),
    ],
)
def test_rate_withheld(numerator, denominator, basis):
    assert rate_with_interval(*published(numerator, denominator)) == {**NONE, "basis": basis}


def test_rate_complementary_cell_is_suppressed():
    got = rate_with_interval(Cell(None, "complementary"), Cell(100, "shown"))
    assert got == {**NONE, "basis": "numerator suppressed"}


def test_rate_clamps_numerator_to_denominator():
    num, den = published(13, 12)  # 15 and 10 after rounding (inconsistent, as rounding can be)
    got = rate_with_interval(num, den, confidence=0.9)
    assert got["rate"] == 1.0
    assert (got["low"], got["high"]) == wilson_interval(10, 10, 0.9)


def test_rate_rejects_bad_confidence():
    with pytest.raises(ValueError):
        rate_with_interval(*published(12, 103), confidence=1.0)
