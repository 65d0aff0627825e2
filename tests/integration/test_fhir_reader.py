"""The FHIR NDJSON reader's two paths (pipeline/read/adapters.py): ``read_json`` with each
resource type's explicit structure, its rows numbered in file order and checked against the
file's own line count, and the line reader it falls back to when the numbers could not be the
file's (a blank line, a lone CR, another resource type in the file).

Every test reads the same folder both ways (``fast=False`` forces the line reader, the reader
as it was before the fast path) and requires the same typed rows, line numbers and quarantine,
and says which path was taken; the numbers themselves are checked against ids that name their
line.
"""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.cli import cli
from pipeline.errors import OutOfMemoryError
from pipeline.read.adapters import LINE_BY_LINE, _load_fhir, discover_format
from pipeline.read.ingest import QUARANTINE_DDL
from pipeline.runner import RunConfig, run_screening
from pipeline.sqltext import literal_files

RELATIONS = ("patient", "observation", "condition", "medication_order", "medication")


def _obs(line: int, **extra) -> dict:
    """An Observation whose id names the line it is written on."""
    return {
        "resourceType": "Observation",
        "id": f"L{line}",
        "status": "final",
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}], "text": "Hb"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-11-01T08:00:00+01:00",
        "valueQuantity": {"value": 13.5, "unit": "g/dL"},
        **extra,
    }


def _write(path: Path, lines: list, end: str = "\n", last: bool = True) -> None:
    text = end.join(x if isinstance(x, str) else json.dumps(x) for x in lines)
    path.write_bytes((text + (end if last else "")).encode("utf-8"))


def _read(folder: Path, fast: bool) -> dict:
    """Read ``folder`` with the FHIR loader alone: the typed relations, the quarantine, each
    file's (rows, malformed) and how many lines went line by line."""
    from pipeline.screening.criteria import load_macros

    found = discover_format(folder, "fhir")
    paths = [f.path for f in (*found.files, *found.lookups)]
    con = duckdb.connect()
    con.execute(QUARANTINE_DDL)
    load_macros(con)  # the orders' adapter, read with MedicationRequests, uses them
    with literal_files(paths) as literals:
        read, line_by_line, _ = _load_fhir(
            con, found, dict(zip(paths, literals, strict=True)), 1, fast
        )
        out = {
            name: con.execute(
                f"SELECT source_file, row_number, resource_type, to_json(r)::VARCHAR FROM fhir_{name} "
                "ORDER BY ALL"
            ).fetchall()
            for name in RELATIONS
        }
        out["resources"] = con.execute("SELECT * FROM fhir_resources ORDER BY ALL").fetchall()
    out["quarantine"] = con.execute("SELECT * FROM quarantine ORDER BY ALL").fetchall()
    out["files"] = {p.name: v[1:] for p, v in read.items()}
    con.close()
    return out | {"line_by_line": line_by_line}


def _both(folder: Path) -> tuple[dict, dict]:
    """The folder read both ways; every relation and the quarantine the same."""
    fast, lines = _read(folder, True), _read(folder, False)
    for key in (*RELATIONS, "resources", "quarantine", "files"):
        assert fast[key] == lines[key], key
    assert lines["line_by_line"] == sum(rows for rows, _ in lines["files"].values())
    return fast, lines


def _numbers_are_ids(rows: list) -> None:
    """Each Observation's line number is the one its id names."""
    assert rows and all(json.loads(r[3])["id"] == f"L{r[1]}" for r in rows)


def test_a_clean_file_takes_the_fast_path_with_the_same_rows(tmp_path: Path) -> None:
    odd = [
        _obs(1),
        # a field of another JSON type reads NULL, a number reads as written, nested lists
        _obs(2, subject="Patient/p1", valueQuantity={"value": 5.20, "comparator": "<"}),
        _obs(3, code={"coding": "x"}, referenceRange=[{"low": {"value": 1e3}}]),
        _obs(4, unknown={"deep": [1, 2, {"x": None}]}, valueString="ünïcødé ✓"),
        _obs(5, status={"not": "a string"}),
    ]
    _write(tmp_path / "Observation.ndjson", odd)
    fast, _ = _both(tmp_path)
    assert fast["line_by_line"] == 0
    assert fast["files"] == {"Observation.ndjson": (5, 0)}
    _numbers_are_ids(fast["observation"])
    assert fast["quarantine"] == []


def test_a_broken_line_in_the_middle_is_quarantined_with_its_number_and_text(
    tmp_path: Path,
) -> None:
    lines: list = [_obs(i) for i in range(1, 8)]
    lines[2] = '{"resourceType": "Observation", "id": "L3", '  # cut short
    lines[4] = '{"resourceType": "Observation"} {"id": "two objects"}'
    lines[5] = '["an", "array"]'
    _write(tmp_path / "Observation.ndjson", lines)
    fast, _ = _both(tmp_path)
    assert fast["line_by_line"] == 0
    assert [(q[2], q[4]) for q in fast["quarantine"]] == [
        (3, lines[2]),
        (5, lines[4]),
        (6, lines[5]),
    ]
    assert {q[3] for q in fast["quarantine"]} == {"malformed JSON line (not one FHIR resource)"}
    _numbers_are_ids(fast["observation"])
    assert [r[1] for r in fast["observation"]] == [1, 2, 4, 7]


@pytest.mark.parametrize("broken", [False, True], ids=["only-blank", "and-a-broken-line"])
@pytest.mark.parametrize("blank", ["", "   \t"], ids=["empty", "spaces"])
def test_a_blank_line_fails_the_count_check_and_falls_back(
    tmp_path: Path, blank: str, broken: bool
) -> None:
    # read_json skips a blank line (or one of spaces): the rows after it would be numbered
    # one short; the count of rows against the file's lines sees it, broken lines or none
    lines = [_obs(1), _obs(2), blank, _obs(4), "not json" if broken else _obs(5), _obs(6)]
    _write(tmp_path / "Observation.ndjson", lines)
    fast, _ = _both(tmp_path)
    assert fast["line_by_line"] == 6
    _numbers_are_ids(fast["observation"])
    assert [q[2] for q in fast["quarantine"]] == ([3, 5] if broken else [3])


def test_broken_lines_are_checked_against_their_own_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the line count wrong (here: made to agree with read_json's rows), the text of the
    lines read_json found broken would be resources: the file is read line by line."""
    from pipeline.read import newlines

    _write(tmp_path / "Observation.ndjson", [_obs(1), "", _obs(3), "{broken", _obs(5)])
    monkeypatch.setattr(newlines, "line_count", lambda path: (4, False))
    fast, _ = _both(tmp_path)
    assert fast["line_by_line"] == 5
    _numbers_are_ids(fast["observation"])
    assert [q[2] for q in fast["quarantine"]] == [2, 4]


def test_crlf_lines_take_the_fast_path(tmp_path: Path) -> None:
    _write(tmp_path / "Observation.ndjson", [_obs(1), "{broken", _obs(3), _obs(4)], end="\r\n")
    fast, _ = _both(tmp_path)
    assert fast["line_by_line"] == 0
    _numbers_are_ids(fast["observation"])
    assert [q[2] for q in fast["quarantine"]] == [2]


def test_a_blank_crlf_line_or_a_lone_cr_falls_back(tmp_path: Path) -> None:
    _write(tmp_path / "Observation.ndjson", [_obs(1), "", _obs(3)], end="\r\n")
    fast, _ = _both(tmp_path)
    assert fast["line_by_line"] == 3
    _numbers_are_ids(fast["observation"])
    # CR alone ends a line for the line reader, not for read_json (one line, one broken row)
    (tmp_path / "Observation.ndjson").unlink()
    _write(tmp_path / "Observation.ndjson", [_obs(1), _obs(2), _obs(3)], end="\r")
    fast, _ = _both(tmp_path)
    assert fast["line_by_line"] == 3
    _numbers_are_ids(fast["observation"])
    assert fast["quarantine"] == []


def test_no_newline_at_the_end_and_a_gzip_file_take_the_fast_path(tmp_path: Path) -> None:
    import gzip

    _write(tmp_path / "Observation.ndjson", [_obs(1), "{broken", _obs(3)], last=False)
    lines = [json.dumps(_obs(i)) for i in range(1, 4)]
    (tmp_path / "more.ndjson.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    fast, _ = _both(tmp_path)
    assert fast["line_by_line"] == 0
    assert fast["files"] == {"Observation.ndjson": (3, 1), "more.ndjson.gz": (3, 0)}
    assert [(q[1], q[2]) for q in fast["quarantine"]] == [("Observation.ndjson", 2)]


def test_another_resource_type_in_the_file_falls_back_and_is_counted(tmp_path: Path) -> None:
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1950-01-01"}
    encounter = {"resourceType": "Encounter", "id": "e1"}
    _write(tmp_path / "Observation.ndjson", [_obs(1), patient, _obs(3), encounter])
    fast, _ = _both(tmp_path)
    assert fast["line_by_line"] == 4
    _numbers_are_ids(fast["observation"])
    assert [(r[1], r[2]) for r in fast["patient"]] == [(2, "Patient")]
    assert ("Observation.ndjson", 4, "Encounter") in [r[1:] for r in fast["resources"]]


def test_every_ndjson_type_takes_the_fast_path(tmp_path: Path) -> None:
    rows = {
        "Patient": {"resourceType": "Patient", "id": "p1", "identifier": [{"value": "9"}]},
        "Condition": {"resourceType": "Condition", "id": "c1", "code": {"coding": []}},
        "MedicationRequest": {"resourceType": "MedicationRequest", "id": "m1", "contained": []},
        "MedicationStatement": {"resourceType": "MedicationStatement", "id": "s1"},
        "Medication": {"resourceType": "Medication", "id": "d1", "code": {"text": "B12"}},
    }
    for name, row in rows.items():
        _write(tmp_path / f"{name}.ndjson", [row, "{broken", row])
    fast, _ = _both(tmp_path)
    assert fast["line_by_line"] == 0
    assert len(fast["medication_order"]) == 4 and len(fast["medication"]) == 2
    assert sorted((q[0], q[1], q[2]) for q in fast["quarantine"]) == sorted(
        (kind, f"{name}.ndjson", 2)
        for name, kind in {
            "Patient": "patients",
            "Condition": "diagnoses",
            "MedicationRequest": "medications",
            "MedicationStatement": "medications",
            "Medication": "patients",  # a look-up file's broken line, as the line reader had it
        }.items()
    )


def test_rows_keep_file_order_across_threads(tmp_path: Path) -> None:
    """DuckDB keeps one scan's order (preserve_insertion_order, its default) in the table it
    makes, whose ``rowid`` numbers the lines, however many threads read the file: 60,000
    lines here (42 MB: two of read_json's buffers, test_rows_keep_file_order_across_read_buffers),
    read by 8 threads, and each number is its line's."""
    lines: list = [_obs(i, note="x" * 400) for i in range(1, 60_001)]
    lines[41_999] = "{broken"
    _write(tmp_path / "Observation.ndjson", lines)
    found = discover_format(tmp_path, "fhir")
    con = duckdb.connect(config={"threads": 8})
    con.execute(QUARANTINE_DDL)
    with literal_files([found.files[0].path]) as (path,):
        _, line_by_line, _ = _load_fhir(con, found, {found.files[0].path: path}, 1)
    assert line_by_line == 0
    ((n, wrong),) = con.execute(
        "SELECT count(*), count(*) FILTER (r.id <> 'L' || row_number) FROM fhir_observation"
    ).fetchall()
    assert (n, wrong) == (59_999, 0)
    assert con.execute("SELECT row_number FROM quarantine").fetchall() == [(42_000,)]


def test_rows_keep_file_order_across_row_groups(tmp_path: Path) -> None:
    """The same over several of DuckDB's row groups (122,880 rows each): 300,000 short lines
    read by 8 threads, two of them broken, far apart, every number its line's."""
    lines: list = [
        f'{{"resourceType":"Observation","id":"L{i}","status":"final"}}' for i in range(1, 300_001)
    ]
    lines[99_999] = lines[250_000] = "{broken"
    _write(tmp_path / "Observation.ndjson", lines)
    found = discover_format(tmp_path, "fhir")
    con = duckdb.connect(config={"threads": 8})
    con.execute(QUARANTINE_DDL)
    with literal_files([found.files[0].path]) as (path,):
        _, line_by_line, _ = _load_fhir(con, found, {found.files[0].path: path}, 1)
    assert line_by_line == 0
    ((n, wrong),) = con.execute(
        "SELECT count(*), count(*) FILTER (r.id <> 'L' || row_number) FROM fhir_observation"
    ).fetchall()
    assert (n, wrong) == (299_998, 0)
    assert con.execute("SELECT row_number FROM quarantine ORDER BY 1").fetchall() == [
        (100_000,),
        (250_001,),
    ]


def test_rows_keep_file_order_across_read_buffers(tmp_path: Path) -> None:
    """A file with no line of 16 MB is read with read_json's default maximum_object_size, in
    buffers of 32 MiB, one per thread (the 64 MB limit read a file under 64 MB on one thread):
    about 70 MB here, three buffers. Broken lines just before, across and after the end of the
    first buffer, and around the end of the second, across which an Observation runs: every
    number is its line's, and the rows are the line reader's."""
    from pipeline.read import newlines

    edge = 32 * 1024 * 1024
    cut = {edge - 25_000, edge, edge + 25_000, 2 * edge - 25_000, 2 * edge + 25_000}
    size, lines, broken = 0, [], []
    for i in range(1, 7_001):
        line = json.dumps(_obs(i, note="x" * 10_000))
        if any(size <= at <= size + len(line) for at in cut):
            line = line[:-3]  # cut short: the note's text never closed
            broken.append(i)
        lines.append(line)
        size += len(line) + 1
    assert len(broken) == 5 and size > 2 * edge
    _write(tmp_path / "Observation.ndjson", lines)
    assert newlines.lines_shorter_than(tmp_path / "Observation.ndjson", 16 * 1024 * 1024)
    fast, _ = _both(tmp_path)
    assert fast["line_by_line"] == 0
    assert len(fast["observation"]) == 7_000 - 5
    _numbers_are_ids(fast["observation"])
    assert [q[2] for q in fast["quarantine"]] == broken


def test_a_file_is_read_with_the_default_object_size_only_when_every_line_is_shorter(
    tmp_path: Path,
) -> None:
    """newlines.lines_shorter_than, here with a limit of 1,000 bytes: a file shorter than the
    limit, or one whose every block of 500 bytes holds a newline, has no line that long; a
    line of 1,200 bytes leaves a block without one; a .gz file is never looked into."""
    from pipeline.read import newlines

    path = tmp_path / "Observation.ndjson"
    path.write_bytes(b"x" * 999)
    assert newlines.lines_shorter_than(path, 1000)
    path.write_bytes(b"".join(b"y" * 90 + b"\n" for _ in range(200)) + b"z" * 300)
    assert newlines.lines_shorter_than(path, 1000)
    path.write_bytes(b"y\n" * 500 + b"x" * 1200 + b"\n" + b"y\n" * 500)
    assert not newlines.lines_shorter_than(path, 1000)
    (tmp_path / "small.ndjson.gz").write_bytes(gzip.compress(b"{}\n"))
    assert not newlines.lines_shorter_than(tmp_path / "small.ndjson.gz", 1000)
    assert not newlines.lines_shorter_than(tmp_path / "missing.ndjson", 1000)


def _lines_by_bytes(data: bytes) -> tuple[int, bool]:
    """A line reader's count of ``data``'s lines, by ``bytes.count``: the reference for
    newlines.line_count (the last line counted whether or not a newline ends it)."""
    ends = data.count(b"\n") + (not data.endswith(b"\n") and data != b"")
    return ends, data.count(b"\r") > data.count(b"\r\n")


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=300)
    | st.lists(st.sampled_from([b"{}", b"\n", b"\r", b"\r\n", b"x"])).map(b"".join)
)
def test_line_count_answers_as_bytes_count(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    """newlines.line_count (counted over a memory map, or a chunk at a time when the file has
    a CR or is a .gz) gives the lines and the lone-CR answer of a plain count, for any bytes."""
    from pipeline.read import newlines

    folder = tmp_path_factory.mktemp("lines")
    (folder / "f.ndjson").write_bytes(data)
    (folder / "f.ndjson.gz").write_bytes(gzip.compress(data))
    expected = _lines_by_bytes(data)
    assert newlines.line_count(folder / "f.ndjson") == expected
    assert newlines.line_count(folder / "f.ndjson.gz") == expected


def test_line_count_of_an_unreadable_file_is_none(tmp_path: Path) -> None:
    from pipeline.read import newlines

    assert newlines.line_count(tmp_path / "missing.ndjson") is None
    (tmp_path / "bad.ndjson.gz").write_bytes(b"not gzip")
    assert newlines.line_count(tmp_path / "bad.ndjson.gz") is None


def _adapted(folder: Path) -> dict:
    """Every row the FHIR adapters present (``_adapted_<kind>`` in its own order), the
    quarantine and the counts, by load_format."""
    from pipeline.read.adapters import load_format
    from pipeline.screening.criteria import load_macros

    found = discover_format(folder, "fhir")
    paths = [f.path for f in (*found.files, *found.lookups)]
    con = duckdb.connect()
    load_macros(con)
    con.execute('SET VARIABLE "settings.open_order_days" = 90')
    with literal_files(paths) as literals:
        got = load_format(con, found, dict(zip(paths, literals, strict=True)), 1)
        out = {
            kind: con.execute(f"SELECT * FROM _adapted_{kind}").fetchall()
            for kind in ("patients", "labs", "medications", "diagnoses")
        }
    out["quarantine"] = con.execute("SELECT * FROM quarantine").fetchall()
    views = con.execute(
        "SELECT view_name FROM duckdb_views() WHERE temporary AND view_name LIKE '\\_adapted\\_%' ESCAPE '\\'"
    ).fetchall()
    con.close()
    return out | {
        "counts": got.counts,
        "rows": dict(got.rows_by_kind),
        "fused": {v[0].removeprefix("_adapted_") for v in views},
    }


@pytest.mark.parametrize("case", ["clean", "broken-observation", "patient-among-conditions"])
def test_reading_with_the_adapter_gives_the_rows_read_first_then_adapted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """Observations, Conditions and Patients read with their adapter in one statement give the
    rows the adapter gives from the resources read first (``_FUSED`` emptied), in the same
    order; a broken line, or a resource of another type that sends a file to the line reader,
    reads every such file the first way."""
    from pipeline.read import adapters

    patients = [
        {"resourceType": "Patient", "id": f"p{i}", "gender": "female", "birthDate": "1950-01-01"}
        for i in range(1, 4)
    ]
    conditions = [
        {
            "resourceType": "Condition",
            "id": f"c{i}",
            "subject": {"reference": f"Patient/p{i}"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "D51.0"}]},
            "onsetDateTime": "2026-01-0{i}T10:00:00Z",
        }
        for i in range(1, 4)
    ]
    observations: list = [
        _obs(i, subject={"reference": f"Patient/p{i % 3 + 1}"}) for i in range(1, 9)
    ]
    if case == "broken-observation":
        observations[4] = "{broken"
    if case == "patient-among-conditions":
        conditions.insert(1, {**patients[0], "id": "p9"})
    _write(tmp_path / "Patient.ndjson", patients)
    _write(tmp_path / "Condition.ndjson", conditions)
    _write(tmp_path / "Observation.ndjson", observations)
    fused = _adapted(tmp_path)
    assert (
        fused.pop("fused")
        == {
            "clean": {"labs", "diagnoses", "patients"},
            "broken-observation": {"diagnoses", "patients"},
            "patient-among-conditions": set(),
        }[case]
    )
    monkeypatch.setattr(adapters, "_FUSED", {})
    first = _adapted(tmp_path)
    assert first.pop("fused") == set()
    assert fused == first
    assert fused["labs"] and fused["diagnoses"] and fused["patients"]


def _order(i: int, **fields) -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": f"mr-{i}",
        "status": "active",
        "subject": {"reference": f"Patient/p{i % 3 + 1}"},
        "authoredOn": "2026-10-01",
        **fields,
    }


_MEDICATIONS = [
    {
        "resourceType": "Medication",
        "id": "m-b12",
        "code": {
            "coding": [
                {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "314231"},
                {"system": "http://www.whocc.no/atc", "code": "B03BA01"},
            ],
            "text": "Cyanocobalamin 1000 MCG/ML",
        },
    },
    {"resourceType": "Medication", "id": "m-uncoded"},
    {"resourceType": "Medication", "id": "m-twice"},  # the first read of an id is the one
    {"resourceType": "Medication", "id": "m-twice", "code": {"text": "read second"}},
    {"resourceType": "Medication", "id": "m-ppi", "code": {"text": "from the look-up"}},
]
_ORDERS = [
    # (the order, the medication, rxnorm and atc the adapter gives it)
    (
        _order(1, medicationReference={"reference": "Medication/m-b12"}),
        ("Cyanocobalamin 1000 MCG/ML", "314231", "B03BA01"),
    ),
    (
        _order(2, medicationReference={"reference": "urn:uuid:m-b12"}),
        ("Cyanocobalamin 1000 MCG/ML", "314231", "B03BA01"),
    ),
    (
        _order(3, medicationReference={"reference": "Medication/none", "display": "by display"}),
        ("by display", None, None),
    ),
    (
        _order(4, medicationReference={"reference": "Medication/m-uncoded", "display": "uncoded"}),
        ("uncoded", None, None),
    ),
    (
        _order(5, medicationReference={"reference": "Medication/m-twice", "display": "twice"}),
        ("twice", None, None),
    ),
    (
        _order(
            6,
            medicationReference={"reference": "#c1"},
            contained=[
                {
                    "resourceType": "Medication",
                    "id": "c1",
                    "code": {
                        "coding": [{"system": "http://www.whocc.no/atc", "code": "A02BC02"}],
                        "text": "pantoprazole",
                    },
                }
            ],
        ),
        ("pantoprazole", None, "A02BC02"),
    ),
    (
        _order(7, medicationReference={"reference": "#gone", "display": "no contained"}),
        ("no contained", None, None),
    ),
    (
        _order(8, medicationReference={"reference": "#m-b12"}),
        (None, None, None),
    ),  # '#': never looked up
    (
        _order(
            9,
            medicationReference={"reference": "Medication/m-ppi"},
            contained=[
                {"resourceType": "Medication", "id": "m-ppi", "code": {"text": "contained first"}}
            ],
        ),
        ("contained first", None, None),
    ),
    (
        _order(
            10,
            medicationCodeableConcept={
                "coding": [{"system": "http://www.whocc.no/atc", "code": "A10BA02"}]
            },
            medicationReference={"reference": "Medication/m-b12"},
        ),
        (None, None, "A10BA02"),
    ),
    (
        _order(11, status="cancelled", medicationReference={"reference": "Medication/m-b12"}),
        ("Cyanocobalamin 1000 MCG/ML", "314231", "B03BA01"),
    ),
    (_order(12), (None, None, None)),
]


@pytest.mark.parametrize("case", ["clean", "two-files", "broken-order", "statement-among-requests"])
def test_orders_read_with_their_first_part_give_the_rows_read_first_then_adapted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """MedicationRequests read with medication_orders.sql in one statement, then given the
    drug of the Medication they reference (medications.sql), give the rows the two parts give
    from the orders read first (``_FUSED`` emptied): a Medication look-up by reference, a
    contained one, a missing or uncoded Medication, an id read twice. A broken line, or a
    MedicationStatement among the requests, reads the file the first way."""
    from pipeline.read import adapters

    patients = [
        {"resourceType": "Patient", "id": f"p{i}", "gender": "female", "birthDate": "1950-01-01"}
        for i in range(1, 4)
    ]
    orders: list = [o for o, _ in _ORDERS]
    if case == "broken-order":
        orders.insert(4, "{broken")
    if case == "statement-among-requests":
        orders.insert(2, {**orders[0], "resourceType": "MedicationStatement", "id": "ms-1"})
    _write(tmp_path / "Patient.ndjson", patients)
    if case == "two-files":
        _write(tmp_path / "Medication.1.ndjson", _MEDICATIONS[:3])
        _write(tmp_path / "Medication.2.ndjson", _MEDICATIONS[3:])
        _write(tmp_path / "MedicationRequest.1.ndjson", orders[:6])
        _write(tmp_path / "MedicationRequest.2.ndjson", orders[6:])
    else:
        _write(tmp_path / "Medication.ndjson", _MEDICATIONS)
        _write(tmp_path / "MedicationRequest.ndjson", orders)
    fused = _adapted(tmp_path)
    made = fused.pop("fused")
    assert ("medication_orders" in made) == (case in ("clean", "two-files"))
    monkeypatch.setattr(adapters, "_FUSED", {})
    first = _adapted(tmp_path)
    assert first.pop("fused") == set()
    assert fused == first
    # _adapted_medications: _rid, source_file, row_number, patient_id, start_date, medication,
    # rxnorm, atc, ...: each order's drug, in file order
    expected = [drug for _, drug in _ORDERS]
    if case == "statement-among-requests":
        expected.insert(2, expected[0])
    assert [row[5:8] for row in sorted(fused["medications"])] == expected
    broken = [(q[1], q[2]) for q in fused["quarantine"]]
    assert broken == ([("MedicationRequest.ndjson", 5)] if case == "broken-order" else [])


def test_a_run_says_when_a_file_was_read_line_by_line(tmp_path: Path) -> None:
    folder = tmp_path / "fhir"
    folder.mkdir()
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-01-01"}
    _write(folder / "Patient.ndjson", [patient])
    _write(folder / "Observation.ndjson", [_obs(1), "", _obs(3)])
    result = run_screening(
        RunConfig(
            folder,
            tmp_path / "out",
            date(2026, 11, 24),
            tmp_path / "db.duckdb",
            input_format="fhir",
        )
    )
    counts = {c["item"]: c["rows"] for c in result.record["input_format"]["counts"]}
    assert counts[LINE_BY_LINE] == 3
    assert result.record["counts"]["rows_read"]["labs"] == 2


@pytest.mark.reliability
def test_out_of_memory_while_reading_ndjson_is_exit_7_not_bad_data(tmp_path: Path) -> None:
    """A 30 MB Patient under a 16 MB limit: memory (exit 7), never a quarantined line or an
    unreadable file."""
    folder = tmp_path / "fhir"
    folder.mkdir()
    big = {"resourceType": "Patient", "id": "p1", "name": [{"text": "x" * 30_000_000}]}
    _write(folder / "Patient.ndjson", [big])
    args = ["run", "--extracts", str(folder), "--out", str(tmp_path / "out")]
    args += ["--db", str(tmp_path / "db.duckdb"), "--as-of", "2026-11-24", "--memory-limit", "16MB"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == OutOfMemoryError.exit_code, result.output
    assert "out of memory" in result.stderr and "cannot read" not in result.stderr


REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"


@pytest.mark.skipif(not REALDATA.exists(), reason="shared/realdata not beside")
@pytest.mark.parametrize("sample", ["fhir-bulk-smart-10", "fhir-r4-synthea-617"])
def test_the_public_ndjson_samples_take_the_fast_path_with_the_same_rows(sample: str) -> None:
    fast, lines = _both(REALDATA / sample)
    assert fast["line_by_line"] == 0
    assert lines["line_by_line"] == sum(rows for rows, _ in fast["files"].values()) > 2000
