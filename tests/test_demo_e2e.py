"""The synthetic population (pipeline/demo.py) and an end-to-end run over it.

Two groups:

- generator checks, which need only the generator: determinism, the folder layout, that every
  planted case is in the files, that the generator's units, names and codes are the ones the
  mapping tables know, that the oracle's constants are the rules file's, and small
  given/expect tables for the oracle itself;
- the end-to-end run (skipped while ``pipeline.runner`` does not exist): the lab flags of a
  full run equal the answer key exactly, planted patient by planted patient, and every
  deliberately broken row is quarantined.
"""

from __future__ import annotations

import csv
import importlib.util
import re
import tomllib
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipeline import demo
from pipeline.demo import PLANTED, CleanResult, DemoTruth, generate_population, oracle_lab_flags

ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2026, 11, 24)
N_PATIENTS = 1500
CRITERION_ANALYTES = {"b12", "mma", "homocysteine", "folate", "hgb", "wbc", "anc"}
CRITERION_ANALYTES |= {"platelets", "mcv", "ldh"}


# ---------------------------------------------------------------------------------------------
# Helpers: the mapping tables, read independently of the pipeline
# ---------------------------------------------------------------------------------------------
def unit_key(unit: str) -> str:
    """The normalised spelling used as data/lab_units.csv's unit_key."""
    key = unit.strip().lower().replace("µ", "u").replace("μ", "u").replace(" ", "")
    key = key.replace("*", "^")
    key = re.sub(r"(?<=\d)e(?=\d)", "^", key)
    return key[1:] if key[:1] in ("x", "×") else key


def lab_units() -> dict[tuple[str, str], float]:
    with (ROOT / "data" / "lab_units.csv").open(encoding="utf-8") as fh:
        return {
            (r["analyte"], r["unit_key"]): float(r["factor_to_canonical"])
            for r in csv.DictReader(fh)
        }


def name_map() -> dict[str, str]:
    with (ROOT / "data" / "lab_test_names.csv").open(encoding="utf-8") as fh:
        return {r["test_name_key"]: r["analyte"] for r in csv.DictReader(fh)}


def rules() -> dict:
    return tomllib.loads((ROOT / "data" / "rules" / "guidance.toml").read_text(encoding="utf-8"))


def loinc_codes() -> dict[str, str]:
    return {code: a for a, spec in rules()["analytes"].items() for code in spec["loinc"]}


def read_kind(folder: Path, prefix: str) -> pl.DataFrame:
    """Every file of one kind, all columns as text, column names lower-cased."""
    frames = []
    for path in sorted(folder.iterdir()):
        if not path.name.startswith(prefix):
            continue
        if path.name.endswith(".parquet"):
            frame = pl.read_parquet(path)
        else:
            frame = pl.read_csv(path, infer_schema=False)
        frame = frame.rename({c: c.lower() for c in frame.columns})
        frames.append(frame.with_columns(pl.lit(path.name).alias("source_file")))
    return pl.concat(frames, how="diagonal_relaxed")


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> DemoTruth:
    base = tmp_path_factory.mktemp("demo")
    return generate_population(base / "extracts", n_patients=N_PATIENTS, as_of=AS_OF, seed=12)


# ---------------------------------------------------------------------------------------------
# Generator checks
# ---------------------------------------------------------------------------------------------
def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    first = generate_population(tmp_path / "a" / "extracts", n_patients=N_PATIENTS, seed=12)
    second = generate_population(tmp_path / "b" / "extracts", n_patients=N_PATIENTS, seed=12)
    assert file_bytes(first.extracts_dir) == file_bytes(second.extracts_dir)
    assert file_bytes(first.truth_dir) == file_bytes(second.truth_dir)
    assert first.expected_flags == second.expected_flags


def test_another_seed_gives_another_population(tmp_path: Path) -> None:
    first = generate_population(tmp_path / "a" / "extracts", n_patients=N_PATIENTS, seed=12)
    other = generate_population(tmp_path / "b" / "extracts", n_patients=N_PATIENTS, seed=13)
    a, b = file_bytes(first.extracts_dir), file_bytes(other.extracts_dir)
    assert a.keys() == b.keys()
    assert all(a[name] != b[name] for name in a if name.startswith("labs"))
    assert first.expected_flags != other.expected_flags


def test_extracts_hold_only_input_files_and_truth_lies_outside(population: DemoTruth) -> None:
    names = sorted(p.name for p in population.extracts_dir.iterdir())
    assert names and all(
        re.match(r"(labs|patients|medications|diagnoses).*\.(csv|csv\.gz|parquet)$", n)
        for n in names
    )
    assert population.truth_dir == population.extracts_dir.parent / "truth"
    truth_files = {p.name for p in population.truth_dir.iterdir()}
    assert {"expected_flags.csv", "planted.csv"} <= truth_files
    written = pl.read_csv(population.truth_dir / "expected_flags.csv", infer_schema=False)
    assert set(written.iter_rows()) == population.expected_flags


def test_truth_folder_inside_extracts_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="truth_dir"):
        generate_population(tmp_path / "x", truth_dir=tmp_path / "x" / "truth")


def test_every_planted_patient_and_row_is_in_the_extracts(population: DemoTruth) -> None:
    patients = read_kind(population.extracts_dir, "patients")
    labs = read_kind(population.extracts_dir, "labs")
    assert len({pp.patient_id for pp in PLANTED}) == len(PLANTED)
    assert set(population.planted) <= set(patients["patient_id"].drop_nulls())
    rows_per_patient = dict(labs.group_by("patient_id").len().iter_rows())
    for pp in PLANTED:
        assert rows_per_patient.get(pp.patient_id, 0) == len(pp.rows), pp.patient_id
        assert population.planted[pp.patient_id] == set(pp.expected)
    assert population.all_missing_patient in population.planted
    assert population.all_missing_patient not in rows_per_patient
    assert population.planted[population.all_missing_patient] == set()


def test_planted_cases_cover_every_criterion_and_unit_spelling() -> None:
    met = set().union(*(pp.expected for pp in PLANTED))
    assert met == set(demo.LAB_CRITERIA)
    planted_units = {(r.analyte, r.unit) for pp in PLANTED for r in pp.rows}
    used_units = {
        (analyte, spec.unit)
        for site in demo.SITES.values()
        for analyte, specs in site.units.items()
        for spec in specs
        if analyte in CRITERION_ANALYTES
    }
    assert used_units <= planted_units, sorted(used_units - planted_units)


def test_generator_units_names_and_codes_are_known_to_the_mapping_tables() -> None:
    factors, names, codes = lab_units(), name_map(), loinc_codes()
    for site in demo.SITES.values():
        for analyte, specs in site.units.items():
            for spec in specs:
                key = (analyte, unit_key(spec.unit))
                assert factors.get(key) == pytest.approx(spec.factor), (site.name, key)
                if spec.loinc:
                    assert codes[spec.loinc] == analyte
            for name in site.names[analyte]:
                assert names[name.strip().lower()] == analyte, (site.name, name)
            if site.loinc:
                assert codes[site.loinc[analyte]] == analyte
    for pp in PLANTED:
        for r in pp.rows:
            if r.messy is None:
                assert (r.analyte, unit_key(r.unit)) in factors, (pp.patient_id, r.unit)


def test_oracle_constants_are_the_rules_files() -> None:
    spec = rules()
    for key, value in demo.THRESHOLDS.items():
        criterion, param = key.split(".")
        assert spec["criteria"][criterion]["params"][param]["value"] == value, key
    for analyte, days in demo.LOOKBACK_DAYS.items():
        assert spec["analytes"][analyte]["lookback_days"] == days, analyte


def _res(pid: str, analyte: str, value: float, days_ago: int) -> CleanResult:
    return CleanResult(pid, analyte, value, AS_OF - timedelta(days=days_ago))


ORACLE_CASES = [
    # (sex, results as (analyte, canonical value, days ago), expected criteria)
    ("F", [("b12", 179.99, 10)], {"b12_deficient"}),
    ("F", [("b12", 180.0, 10)], {"b12_indeterminate"}),
    ("F", [("b12", 350.0, 10)], {"b12_indeterminate"}),
    ("F", [("b12", 250.0, 10), ("mma", 200.0, 10)], set()),
    ("F", [("b12", 250.0, 10), ("mma", 200.0, 11)], {"b12_indeterminate"}),
    ("F", [("b12", 150.0, 366)], set()),
    ("F", [("b12", 150.0, 365)], {"b12_deficient"}),
    ("M", [("hgb", 12.99, 90)], {"anemia", "cytopenia_b12_untested"}),
    ("M", [("hgb", 12.99, 91)], set()),
    ("x", [("hgb", 12.5, 5), ("b12", 500.0, 5)], set()),
    ("male", [("hgb", 12.5, 5), ("b12", 500.0, 5)], {"anemia"}),
    ("F", [("hgb", 9.0, 40), ("hgb", 12.5, 5), ("mma", 200.0, 5)], set()),
    ("M", [("mcv", 100.01, 5), ("mma", 150.0, 200)], {"macrocytosis"}),
    (
        "F",
        [("hgb", 8.0, 5), ("wbc", 3.0, 5), ("platelets", 90.0, 5), ("b12", 600.0, 5)],
        {"anemia", "leukopenia", "thrombocytopenia", "pancytopenia"},
    ),
    (
        "F",
        [("mma", 400.0, 5), ("hgb", 8.0, 5), ("platelets", 90.0, 5), ("ldh", 250.01, 5)],
        {
            "mma_elevated",
            "anemia",
            "thrombocytopenia",
            "deficiency_with_cytopenia",
            "pseudo_tma_suspect",
        },
    ),
    (
        "F",
        [("anc", 1.49, 5), ("b12", 170.0, 5)],
        {"neutropenia", "b12_deficient", "deficiency_with_cytopenia"},
    ),
    (
        "F",
        [("folate", 3.99, 5), ("homocysteine", 10.01, 5)],
        {"folate_low", "homocysteine_elevated"},
    ),
    ("F", [("hgb", 4.99, 5), ("b12", 400.0, 5)], {"anemia", "critical_anemia"}),
]


@pytest.mark.parametrize(("sex", "results", "expected"), ORACLE_CASES)
def test_oracle_given_expect(
    sex: str, results: list[tuple[str, float, int]], expected: set[str]
) -> None:
    rows = [_res("p1", a, v, d) for a, v, d in results]
    assert oracle_lab_flags({"p1": sex}, rows, AS_OF) == {("p1", c) for c in expected}


def test_population_looks_like_primary_care(population: DemoTruth) -> None:
    patients = read_kind(population.extracts_dir, "patients")
    labs = read_kind(population.extracts_dir, "labs")
    background = patients.filter(pl.col("patient_id").str.starts_with("P0"))
    sex = background["sex"].fill_null("").to_list()
    assert 0.47 < sex.count("F") / len(sex) < 0.57
    assert 0.42 < sex.count("M") / len(sex) < 0.52
    assert 0.002 < sum(s not in ("F", "M") for s in sex) / len(sex) < 0.03
    ages = [AS_OF.year - int(b[:4]) for b in background["birth_date"].to_list()]
    assert min(ages) >= 18 and max(ages) <= 101 and sorted(ages)[len(ages) // 2] >= 60
    recent = labs.filter(
        pl.col("patient_id").str.starts_with("P0")
        & (pl.col("collected_at").str.slice(0, 10) >= str(AS_OF - timedelta(days=365)))
    )
    tested = {
        name: recent.filter(pl.col("test_name").str.strip_chars().str.to_lowercase().is_in(keys))[
            "patient_id"
        ].n_unique()
        / background.height
        for name, keys in {
            "hgb": ["hemoglobin", "hgb", "hb", "haemoglobin"],
            "b12": [
                "vitamin b12",
                "vit b12",
                "b12",
                "cobalamin (vitamin b12)",
                "vitamin b12, serum",
            ],
        }.items()
    }
    assert 0.5 < tested["hgb"] < 0.7
    assert 0.1 < tested["b12"] < 0.2
    assert 0.007 < population.messy_rows / population.n_lab_rows < 0.02
    assert set(population.messy_by_reason) >= {
        "missing_patient_id",
        "unknown_patient",
        "unparseable_value",
        "unparseable_date",
        "future_date",
        "unit_mismatch",
        "negative_value",
    }
    counts = {c: 0 for c in demo.LAB_CRITERIA}
    for pid, criterion in population.expected_flags:
        if pid.startswith("P0"):
            counts[criterion] += 1
    assert (
        counts["anemia"] > 30 and counts["b12_deficient"] > 10 and counts["thrombocytopenia"] > 10
    )


# ---------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------
needs_runner = pytest.mark.skipif(
    importlib.util.find_spec("pipeline.runner") is None, reason="pipeline.runner not written yet"
)


@pytest.fixture(scope="module")
def screened(population: DemoTruth, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipeline.runner import RunConfig, run_screening

    base = tmp_path_factory.mktemp("run")
    out = base / "out"
    run_screening(
        RunConfig(extracts=population.extracts_dir, out=out, as_of=AS_OF, db=base / "b.duckdb")
    )
    return out


def _lab_flags(out: Path) -> set[tuple[str, str]]:
    flags = pl.read_parquet(out / "flags.parquet", columns=["patient_id", "criterion"])
    flags = flags.filter(pl.col("criterion").is_in(list(demo.LAB_CRITERIA)))
    return set(flags.iter_rows())


def _diff(
    expected: set[tuple[str, str]], got: set[tuple[str, str]], purpose: dict[str, str]
) -> str:
    """At most 20 rows, both directions shown when both are wrong."""
    missing = [f"missing  {p} {c}  {purpose.get(p, '')}" for p, c in sorted(expected - got)]
    extra = [f"extra    {p} {c}  {purpose.get(p, '')}" for p, c in sorted(got - expected)]
    shown_missing = missing[: 20 - min(len(extra), 10)]
    lines = shown_missing + extra[: 20 - len(shown_missing)]
    hidden = len(missing) + len(extra) - len(lines)
    head = f"{len(missing)} missing, {len(extra)} extra (of {len(expected)} expected):"
    return "\n".join([head, *lines] + ([f"... and {hidden} more"] if hidden else []))


@needs_runner
def test_run_flags_equal_the_answer_key(population: DemoTruth, screened: Path) -> None:
    got = _lab_flags(screened)
    expected = population.expected_flags
    assert got == expected, _diff(expected, got, population.planted_purpose)


@needs_runner
def test_each_planted_patient_gets_exactly_its_hand_written_criteria(
    population: DemoTruth, screened: Path
) -> None:
    got = _lab_flags(screened)
    wrong = {}
    for pid, expected in population.planted.items():
        flagged = {c for p, c in got if p == pid}
        if flagged != expected:
            wrong[pid] = (population.planted_purpose[pid], sorted(expected), sorted(flagged))
    assert not wrong, "\n".join(
        f"{p}: {w[0]}\n  expected {w[1]}\n  got      {w[2]}" for p, w in wrong.items()
    )


@needs_runner
def test_patient_without_data_is_never_flagged(population: DemoTruth, screened: Path) -> None:
    flags = pl.read_parquet(screened / "flags.parquet")
    assert flags.filter(pl.col("patient_id") == population.all_missing_patient).is_empty()
    worklist = pl.read_csv(screened / "worklist.csv", infer_schema=False)
    assert population.all_missing_patient not in worklist["patient_id"].to_list()


@needs_runner
def test_every_broken_row_is_quarantined(population: DemoTruth, screened: Path) -> None:
    quarantine = pl.read_csv(screened / "quarantine.csv", infer_schema=False)
    assert quarantine.height >= population.messy_rows
    per_file = Counter(Path(f).name for f in quarantine["source_file"].to_list())
    short = {
        name: (n, per_file[name])
        for name, n in population.messy_by_file.items()
        if per_file[name] < n
    }
    assert not short, f"file: (broken rows written, rows quarantined) {short}"
