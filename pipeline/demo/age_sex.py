"""The age and sex mix of the background population: the adults of a real population.

Source: Office for National Statistics, "Population and household estimates, England and Wales:
Census 2021" (28 June 2022), usual residents on Census Day by five-year age band. The counts
below are that release's rounded figures in thousands (to the nearest hundred people). They add
up to its headline figures: 59.6 million residents, 18.6 % aged 65 or over, 527,900 aged 90 or
over (tests/acceptance/test_demo_e2e.py checks the sums). A general practice list follows the
resident population closely (NHS Digital, "Patients Registered at a GP Practice": registrations
run a little above residents from age 5 to 84), so these shares stand in for a practice list.

The female share of each band is rounded to the whole percent and approximate (the release's
overall share is 51.0 %: near even below 65, rising to about two thirds at 90 and over); it
was not checked against the release's tables offline.

Only adults are drawn (18 and over, with 18-19 taken as two fifths of the 15-19 band): the
criteria apply adult limits. Within a band every age is equally likely, except 90 and over,
where each year is 0.7 times as likely as the one before, up to 100.
"""

from __future__ import annotations

import random

CENSUS_TOTAL_THOUSANDS = 59_597.3
CENSUS_UNDER_15_THOUSANDS = 3_232.1 + 3_524.6 + 3_595.9  # 0-4, 5-9, 10-14: 17.4 %
CENSUS_15_TO_19_THOUSANDS = 3_394.7

# (first age, last age, thousands, female share); 18-19 is two fifths of 15-19.
AGE_BANDS: tuple[tuple[int, int, float, float], ...] = (
    (18, 19, 0.4 * CENSUS_15_TO_19_THOUSANDS, 0.49),
    (20, 24, 3_602.1, 0.50),
    (25, 29, 3_901.8, 0.51),
    (30, 34, 4_148.8, 0.51),
    (35, 39, 3_981.6, 0.51),
    (40, 44, 3_755.7, 0.51),
    (45, 49, 3_788.7, 0.51),
    (50, 54, 4_123.4, 0.51),
    (55, 59, 4_029.0, 0.51),
    (60, 64, 3_455.7, 0.51),
    (65, 69, 2_945.1, 0.52),
    (70, 74, 2_978.0, 0.52),
    (75, 79, 2_170.3, 0.54),
    (80, 84, 1_517.0, 0.56),
    (85, 89, 925.5, 0.60),
    (90, 100, 527.9, 0.67),
)
OLDEST_BAND_DECAY = 0.7  # each year from 90 to 100 this many times as likely as the one before

# Sex written as EHRs now and then do: some read as M or F, the others as unknown.
ODD_SEX_SHARE = 0.01
ODD_SEX_SPELLINGS = ("male", "FEMALE", "x", "U", "", "Female", "unknown")


def adult_share(first: int, last: int = 200) -> float:
    """The share of the adults (18 and over) aged ``first`` to ``last``, by the bands."""
    total = sum(n for _, _, n, _ in AGE_BANDS)
    return sum(_years_in(band, first, last) * band[2] for band in AGE_BANDS) / total


def _years_in(band: tuple[int, int, float, float], first: int, last: int) -> float:
    """The share of ``band``'s people aged ``first`` to ``last``."""
    lo, hi, _, _ = band
    weights = _year_weights(lo, hi)
    inside = sum(
        w for age, w in zip(range(lo, hi + 1), weights, strict=True) if first <= age <= last
    )
    return inside / sum(weights)


def _year_weights(lo: int, hi: int) -> list[float]:
    if lo == AGE_BANDS[-1][0]:
        return [OLDEST_BAND_DECAY**k for k in range(hi - lo + 1)]
    return [1.0] * (hi - lo + 1)


def draw_age_and_sex(rng: random.Random) -> tuple[int, str]:
    """An age in completed years and the sex as written in the patients file."""
    lo, hi, _, female = rng.choices(AGE_BANDS, weights=[b[2] for b in AGE_BANDS])[0]
    age = rng.choices(range(lo, hi + 1), weights=_year_weights(lo, hi))[0]
    if rng.random() < ODD_SEX_SHARE:
        return age, rng.choice(ODD_SEX_SPELLINGS)
    return age, "F" if rng.random() < female else "M"
