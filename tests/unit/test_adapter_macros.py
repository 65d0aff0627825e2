"""The format adapters' shared macros (sql/adapters/common/macros.sql).

A macro given a cheap first branch for the common case (a plain ``Patient/123`` or
``urn:uuid:123``, a date with no time) must answer exactly as its regular expression alone
did: checked against that definition for hand-picked values and for text drawn by Hypothesis
from the characters such values are made of.
"""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.read.adapters import adapter_sql

# fhir_patient_id as it was, by its regular expression alone: the reference for the fast path
_REGEX_ONLY = r"""
CREATE OR REPLACE TEMP MACRO patient_id_by_regex(ref) AS CASE
    WHEN starts_with(trim(ref::VARCHAR), 'urn:uuid:') THEN nullif(substr(trim(ref::VARCHAR), 10), '')
    ELSE nullif(regexp_extract(trim(ref::VARCHAR), '(^|/)Patient/([^/]+)(/_history/[^/]*)?$', 2), '')
END;
CREATE OR REPLACE TEMP MACRO local_datetime_by_regex(v) AS nullif(regexp_replace(trim(v::VARCHAR),
    '^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?)(Z|[+-]\d\d:?\d\d)$', '\1'), '');
"""


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    c.execute(adapter_sql("common", "macros"))
    c.execute(_REGEX_ONLY)
    yield c
    c.close()


def _both(con: duckdb.DuckDBPyConnection, refs: list[str | None]) -> list[tuple]:
    return con.execute(
        "SELECT ref, fhir_patient_id(ref), patient_id_by_regex(ref) FROM unnest(?) AS t(ref)",
        [refs],
    ).fetchall()


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("Patient/123", "123"),
        ("Patient/a b", "a b"),
        (" Patient/123 ", "123"),
        ("Patient/123 ", "123"),
        ("Patient/123\u00a0", "123"),  # trim takes Unicode spaces too
        ("Patient/123\t", "123\t"),
        ("Patient/", None),
        ("Patient/123/_history/2", "123"),
        ("Patient/123/other", None),
        ("https://x/fhir/Patient/123", "123"),
        ("urn:uuid:123", "123"),
        (" urn:uuid:123", "123"),
        ("urn:uuid:123\u3000", "123"),
        ("urn:uuid:", None),
        ("Group/1", None),
        ("Patient/Patient/1", "1"),
        ("", None),
        (None, None),
    ],
)
def test_fhir_patient_id_cases(con, ref, expected) -> None:
    ((_, fast, by_regex),) = _both(con, [ref])
    assert fast == expected
    assert fast == by_regex


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet="Patient/_historyurn:uid 0123 \t\u00a0\u3000", max_size=30),
            st.builds(lambda s: "Patient/" + s, st.text(alphabet="ab1/ _h\u00a0", max_size=12)),
        ),
        max_size=20,
    )
)
def test_fhir_patient_id_fast_path_answers_as_the_regex(con, refs) -> None:
    for ref, fast, by_regex in _both(con, refs):
        assert fast == by_regex, ref


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2012-10-19T23:37:54+02:00", "2012-10-19T23:37:54"),
        ("2019-02-17T05:07:38Z", "2019-02-17T05:07:38"),
        ("2012-10-19T23:37Z", "2012-10-19T23:37"),
        ("2012-10-19T23:37+0200", "2012-10-19T23:37"),
        ("2012-10-19 23:37:54.123-05:00", "2012-10-19 23:37:54.123"),
        ("2012-10-19T23:37:54", "2012-10-19T23:37:54"),
        ("2012-10-19", "2012-10-19"),
        (" 2012-10-19 ", "2012-10-19"),
        ("  2012-10-19T23:37Z  ", "2012-10-19T23:37"),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_local_datetime_cases(con, value, expected) -> None:
    ((fast, by_regex),) = con.execute(
        "SELECT local_datetime(?::VARCHAR), local_datetime_by_regex(?::VARCHAR)", [value, value]
    ).fetchall()
    assert fast == expected
    assert fast == by_regex


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet="0123456789-T :.Z+ \u00a0", max_size=30),
            st.builds(
                lambda a, b: a + b,
                st.sampled_from(["2012-10-19", "2012-10-19T23:37", "2012-10-19 23:37:54.5"]),
                st.text(alphabet="Z+-0123: ", max_size=8),
            ),
        ),
        max_size=20,
    )
)
def test_local_datetime_fast_path_answers_as_the_regex(con, values) -> None:
    rows = con.execute(
        "SELECT v, local_datetime(v), local_datetime_by_regex(v) FROM unnest(?) AS t(v)",
        [values],
    ).fetchall()
    for value, fast, by_regex in rows:
        assert fast == by_regex, value
