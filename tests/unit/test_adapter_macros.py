"""The format adapters' shared macros (sql/adapters/common/macros.sql).

A macro given a cheap first branch for the common case (a plain ``Patient/123``) must answer
exactly as its regular expression alone did: checked against that definition for hand-picked
references and for text drawn by Hypothesis from the characters a reference is made of.
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
END
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
