"""``b12screen bench``: time a screening run at scale against two bare-DuckDB floors.

    b12screen bench --patients 1000000 --labs-per-patient 50 --dir ./bench-data --json bench.json

1. Generates synthetic extracts as Parquet with DuckDB SQL (``range()`` and ``hash()``, so the
   same parameters give the same rows): ``patients.parquet`` and ``labs_000.parquet`` … (about
   5M rows each) in the input columns (docs/inputs.md). Values are text as labs report them ('154',
   '1,850', '<150'), units come in the spellings of data/lab_units.csv (B12 pg/mL, pmol/L,
   ng/L; Hgb g/dL, g/L, mmol/L; counts 10*9/L, K/uL, x10^9/L, 10^3/µL, cells/uL …), ~80 % of
   rows carry a LOINC code and the rest a test name only, ~2 % are tests the rules do not use
   and ~0.1 % are bad rows the pipeline must quarantine. Generated files are reused when the
   parameters (and the DuckDB version) match, so timings can be re-run.
2. Measures two floors on the same files, in a fresh process and a fresh database: the load
   floor (``CREATE TABLE t AS SELECT * FROM read_parquet('labs_*.parquet')``), then the
   screening floor (one bare query over ``t`` computing the lab criteria: analyte mapping, value
   parsing, unit conversion, latest result per patient and analyte in its look-back, thresholds
   and the derived criteria). Its per-criterion patient counts are compared with the
   pipeline's, so the floor is checked to compute the same thing.
3. Runs the pipeline (``ScreeningRun``) stage by stage in a fresh process, timing each stage
   and measuring its peak RSS (the kernel's high-water mark, reset before each stage, and a
   50 ms sampler; DuckDB runs in-process so RSS covers it). Every SQL statement the pipeline
   sends is timed, and the pandera checks are timed apart from the DuckDB→Arrow fetch, so the
   JSON says which statement dominates a stage. A stage that fails is reported (with the error
   an aborted transaction hides) and the figures up to it are kept.

``--memory-limit`` sets DuckDB's memory_limit for the floors and the run (after prepare); by
default both use DuckDB's own limit (80 % of RAM); a nightly run's default is 3GB
(``b12screen run --memory-limit``), which is what the figures in docs/benchmarks.md use.

Aims (the engine issue's): the whole run within 2x both floors together, ingest + validate
within 1.5x the load floor, screen within 1.5x the screening floor, peak RSS at most 6 GiB.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

GENERATOR_VERSION = 1
ROWS_PER_FILE = 5_000_000
GIB = 1 << 30
# The aims of the engine issue ("Health-system scale"): ingest + validate within 1.5x the load
# floor, screen within 1.5x the screening floor, the whole run (every output included) within
# 2.0x both floors together, peak RSS at most 6 GiB (at 250M rows, with the default limit).
AIMS = {"load_ratio": 1.5, "screen_ratio": 1.5, "total_ratio": 2.0, "peak_rss_bytes": 6 * GIB}

# -- synthetic data specification ------------------------------------------------------------
# analyte: share of lab rows (per mille), LOINC codes, test names (as sources spell them),
# canonical (normal low, normal high, abnormal low, abnormal high, abnormal share).
# glucose, sodium and tsh are tests the rules do not map: kept, never screened.
# fmt: off
ANALYTES: dict[str, dict[str, Any]] = {
    "hgb": dict(pm=170, loinc=["718-7", "30313-1"], names=["Hemoglobin", "HGB", "Hb"], dist=(12.5, 17.0, 4.0, 12.5, 0.12)),
    "wbc": dict(pm=170, loinc=["6690-2", "26464-8"], names=["White Blood Cells", "WBC"], dist=(4.0, 11.0, 1.0, 4.0, 0.08)),
    "anc": dict(pm=150, loinc=["751-8", "26499-4"], names=["Absolute Neutrophil Count", "ANC", "Neutrophils, Absolute"], dist=(1.8, 7.5, 0.2, 1.8, 0.06)),
    "platelets": dict(pm=170, loinc=["777-3", "26515-7"], names=["Platelet Count", "PLT"], dist=(150.0, 400.0, 5.0, 150.0, 0.07)),
    "mcv": dict(pm=150, loinc=["787-2", "30428-7"], names=["MCV", "Mean Corpuscular Volume"], dist=(80.0, 98.0, 98.0, 115.0, 0.08)),
    "b12": dict(pm=40, loinc=["2132-9", "14685-2"], names=["Vitamin B12", "B12", "Cobalamin"], dist=(200.0, 900.0, 80.0, 350.0, 0.25)),
    "folate": dict(pm=30, loinc=["2284-8", "14732-2"], names=["Folate", "Serum Folate"], dist=(4.5, 20.0, 1.5, 4.5, 0.08)),
    "mma": dict(pm=10, loinc=["13964-2"], names=["Methylmalonic Acid", "MMA"], dist=(70.0, 260.0, 280.0, 1200.0, 0.12)),
    "homocysteine": dict(pm=5, loinc=["13965-9", "2428-1"], names=["Homocysteine", "Total Homocysteine"], dist=(5.0, 10.0, 10.0, 40.0, 0.30)),
    "ldh": dict(pm=20, loinc=["2532-0", "14804-9"], names=["LDH", "Lactate Dehydrogenase"], dist=(120.0, 250.0, 250.0, 1500.0, 0.10)),
    "creatinine": dict(pm=35, loinc=["2160-0", "38483-4"], names=["Creatinine", "Serum Creatinine"], dist=(0.6, 1.2, 1.2, 4.0, 0.15)),
    "egfr": dict(pm=30, loinc=["33914-3", "98979-8"], names=["eGFR", "Estimated GFR"], dist=(60.0, 110.0, 15.0, 60.0, 0.20)),
    "glucose": dict(pm=10, loinc=["2345-7"], names=["Glucose"], dist=(70.0, 140.0, 140.0, 300.0, 0.10)),
    "sodium": dict(pm=6, loinc=["2951-2"], names=["Sodium"], dist=(135.0, 145.0, 120.0, 135.0, 0.05)),
    "tsh": dict(pm=4, loinc=["3016-3"], names=["TSH"], dist=(0.5, 4.0, 4.0, 20.0, 0.05)),
}
# analyte -> [(unit as written, share %, factor to canonical, decimals or -1 for '1,850')]
UNITS: dict[str, list[tuple[str, int, float, int]]] = {
    "hgb": [("g/dL", 65, 1, 1), ("g/L", 30, 0.1, 0), ("mmol/L", 5, 1.611344, 1)],
    "wbc": [("10*9/L", 35, 1, 1), ("K/uL", 25, 1, 1), ("x10^9/L", 20, 1, 1), ("10^3/µL", 15, 1, 1), ("cells/uL", 5, 0.001, -1)],
    "anc": [("10*9/L", 35, 1, 2), ("K/uL", 25, 1, 2), ("x10^9/L", 20, 1, 2), ("10^3/µL", 15, 1, 2), ("cells/uL", 5, 0.001, -1)],
    "platelets": [("10*9/L", 35, 1, 0), ("K/uL", 30, 1, 0), ("x10^9/L", 20, 1, 0), ("10^3/µL", 15, 1, 0)],
    "mcv": [("fL", 95, 1, 1), ("um3", 5, 1, 1)],
    "b12": [("pg/mL", 55, 1, 0), ("pmol/L", 30, 1.35539, 0), ("ng/L", 15, 1, 0)],
    "folate": [("ng/mL", 60, 1, 1), ("nmol/L", 30, 0.441306, 1), ("µg/L", 10, 1, 1)],
    "mma": [("nmol/L", 85, 1, 0), ("umol/L", 10, 1000, 3), ("µmol/L", 5, 1000, 3)],
    "homocysteine": [("umol/L", 60, 1, 1), ("µmol/L", 30, 1, 1), ("nmol/mL", 10, 1, 1)],
    "ldh": [("U/L", 80, 1, 0), ("IU/L", 20, 1, 0)],
    "creatinine": [("mg/dL", 60, 1, 2), ("umol/L", 40, 0.0113097, 0)],
    "egfr": [("mL/min/1.73m2", 80, 1, 0), ("mL/min/{1.73_m2}", 20, 1, 0)],
    "glucose": [("mg/dL", 100, 1, 0)],
    "sodium": [("mmol/L", 100, 1, 0)],
    "tsh": [("mIU/L", 100, 1, 2)],
}
# fmt: on
# Censored B12 results ('<150' pg/mL is '<111' pmol/L): 0.3 % of B12 rows each way.
CENSORED = {"pg/mL": ("150", "2000"), "ng/L": ("150", "2000"), "pmol/L": ("111", "1476")}
LOINC_SHARE = 80  # % of rows with a LOINC code; the others carry only a test name
HISTORY_DAYS = 730  # collected_at spreads over two years up to the as-of date
BAD_PER_10K = 10  # 0.1 % bad lab rows, ten kinds (see _labs_select)


# -- small helpers ---------------------------------------------------------------------------
def say(text: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def _q(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _fmt_bytes(n: float | None) -> str:
    return "-" if n is None else f"{n / GIB:.2f} GiB"


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class MemoryMeter:
    """Peak RSS of this process over a block: the kernel high-water mark (VmHWM, reset through
    /proc/self/clear_refs where allowed) and a sampler thread reading VmRSS every 50 ms."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_kib = 0
        self.hwm_reset = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_kib = max(self.peak_kib, _status_kib("VmRSS") or 0)

    def __enter__(self) -> MemoryMeter:
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
                f.write("5")  # resets VmHWM to the current RSS
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.peak_kib = _status_kib("VmRSS") or 0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.end_kib = _status_kib("VmRSS") or 0
        self.peak_kib = max(self.peak_kib, self.end_kib)
        if self.hwm_reset:
            self.peak_kib = max(self.peak_kib, _status_kib("VmHWM") or 0)

    @property
    def peak_bytes(self) -> int:
        return self.peak_kib * 1024

    @property
    def end_bytes(self) -> int:
        return self.end_kib * 1024


@contextmanager
def measured(figures: dict[str, Any]) -> Iterator[None]:
    """Fill ``figures`` with seconds, peak_rss_bytes and end_rss_bytes of the block."""
    meter = MemoryMeter()
    try:
        with meter:
            start = time.perf_counter()
            try:
                yield
            finally:
                figures["seconds"] = round(time.perf_counter() - start, 3)
    finally:
        figures["peak_rss_bytes"] = meter.peak_bytes
        figures["end_rss_bytes"] = meter.end_bytes


def _connect(db: Path, memory_limit: str | None, threads: int | None):
    import duckdb

    for p in (db, db.with_name(db.name + ".wal")):
        p.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    _configure(con, memory_limit, threads)
    return con


def _configure(con, memory_limit: str | None, threads: int | None) -> None:
    # DuckDB's own progress bar writes to stdout, where the bench's table goes
    con.execute("SET enable_progress_bar = false")
    if memory_limit:
        con.execute(f"SET memory_limit = {_q(memory_limit)}")
    if threads:
        con.execute(f"SET threads = {int(threads)}")


def _duckdb_memory(con) -> int | None:
    try:
        return int(con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()[0])
    except Exception:  # noqa: BLE001 - informative figure only
        return None


# -- 1. generation ---------------------------------------------------------------------------
def _values_sql(rows: list[tuple], names: list[str]) -> str:
    body = ", ".join("(" + ", ".join(_lit(v) for v in row) + ")" for row in rows)
    return f"(VALUES {body}) AS v({', '.join(names)})"


def _lit(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, str):
        return _q(v)
    if isinstance(v, list):
        return "[" + ", ".join(_lit(x) for x in v) + "]::VARCHAR[]"
    if isinstance(v, float):
        return f"{v!r}::DOUBLE"
    return str(v)


def _create_spec_tables(con) -> None:
    """g_analyte (bucket 0..999 -> analyte and its codes) and g_unit ((analyte, 0..99) -> unit)."""
    rows, lo = [], 0
    for name, a in ANALYTES.items():
        n, m, ab_lo, ab_hi, ab_share = a["dist"]
        rows.append(
            (name, lo, lo + a["pm"] - 1, a["loinc"], a["names"], n, m, ab_lo, ab_hi, ab_share)
        )
        lo += a["pm"]
    assert lo == 1000, lo
    spec = _values_sql(
        rows, ["analyte", "lo", "hi", "loincs", "names", "n_lo", "n_hi", "a_lo", "a_hi", "a_share"]
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE g_analyte AS SELECT b.range AS bucket, v.* FROM range(1000) b "
        f"JOIN {spec} ON b.range BETWEEN v.lo AND v.hi"
    )
    urows = []
    for analyte, units in UNITS.items():
        assert sum(u[1] for u in units) == 100, analyte
        lo = 0
        for unit, share, factor, decimals in units:
            c_lo, c_hi = CENSORED.get(unit, (None, None)) if analyte == "b12" else (None, None)
            urows.append((analyte, lo, lo + share - 1, unit, float(factor), decimals, c_lo, c_hi))
            lo += share
    spec = _values_sql(urows, ["analyte", "lo", "hi", "unit", "factor", "decimals", "c_lo", "c_hi"])
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE g_unit AS SELECT v.analyte, b.range AS bucket, v.unit, v.factor, "
        f"v.decimals, v.c_lo, v.c_hi FROM range(100) b JOIN {spec} ON b.range BETWEEN v.lo AND v.hi"
    )


def _labs_select(start: int, stop: int, n_patients: int, as_of: date) -> str:
    """Lab rows start..stop-1. hash(j, k) gives an independent pseudo-random stream per k."""
    u = "((hash(j, {k}) % 1000000)::DOUBLE / 1e6)"
    secs = HISTORY_DAYS * 86400
    day_after = f"(DATE {_q(as_of.isoformat())} + 1)::TIMESTAMP"
    return f"""
    WITH base AS (
        SELECT range AS j,
               hash(range, 1) % {n_patients} AS p,
               hash(range, 2) % 1000 AS ab,
               hash(range, 3) % 100 AS ub,
               hash(range, 9) % 10000 AS bad
        FROM range({start}, {stop})
    ),
    drawn AS (
        SELECT base.*, a.analyte, a.loincs, a.names, gu.unit, gu.factor, gu.decimals, gu.c_lo, gu.c_hi,
               CASE WHEN {u.format(k=6)} < a.a_share
                    THEN a.a_lo + (a.a_hi - a.a_lo) * {u.format(k=7)}
                    ELSE a.n_lo + (a.n_hi - a.n_lo) * {u.format(k=7)} END / gu.factor AS x,
               {u.format(k=8)} AS cu
        FROM base
        JOIN g_analyte a ON a.bucket = base.ab
        JOIN g_unit gu ON gu.analyte = a.analyte AND gu.bucket = base.ub
    ),
    rendered AS (
        SELECT j, p, bad, analyte, unit,
               CASE WHEN hash(j, 4) % 100 < {LOINC_SHARE} OR len(names) = 1
                    THEN loincs[1 + (hash(j, 5) % len(loincs))::BIGINT] END AS loinc,
               names[1 + (hash(j, 5) % len(names))::BIGINT] AS test_name,
               CASE
                   WHEN c_lo IS NOT NULL AND cu < 0.003 THEN '<' || c_lo
                   WHEN c_hi IS NOT NULL AND cu > 0.997 THEN '>' || c_hi
                   WHEN decimals < 0 THEN format('{{:,}}', round(x)::BIGINT)
                   WHEN decimals = 0 THEN round(x)::BIGINT::VARCHAR
                   ELSE round(x, decimals)::VARCHAR
               END AS value,
               {day_after} - to_seconds((1 + hash(j, 10) % {secs})::BIGINT) AS collected_at
        FROM drawn
    )
    SELECT
        CASE WHEN bad = 0 THEN NULL
             WHEN bad = 1 THEN 'X' || lpad(p::VARCHAR, 8, '0')
             ELSE 'P' || lpad(p::VARCHAR, 8, '0') END AS patient_id,
        CASE WHEN bad = 4 THEN {day_after} + INTERVAL 3 DAY
             WHEN bad = 7 THEN NULL
             ELSE collected_at END AS collected_at,
        loinc,
        test_name,
        CASE WHEN bad = 2 THEN 'pending'
             WHEN bad = 3 THEN '4,5'
             WHEN bad = 6 THEN '-' || value
             WHEN bad = 8 THEN NULL
             ELSE value END AS value,
        CASE WHEN bad = 5 THEN 'mg' WHEN bad = 9 THEN NULL ELSE unit END AS unit,
        'R' || j::VARCHAR AS result_id
    FROM rendered
    ORDER BY j
    """


def _patients_select(n: int, as_of: date) -> str:
    """Patients P00000000…; 0.01 % repeated rows (same content) and 0.01 % extra rows without a
    birth date (quarantined; they have no labs)."""
    as_of_sql = f"DATE {_q(as_of.isoformat())}"
    row = f"""
        'P' || lpad(i::VARCHAR, 8, '0') AS patient_id,
        CASE WHEN s < 51 THEN 'F' WHEN s < 98 THEN 'M' WHEN s = 98 THEN 'female' ELSE
            CASE WHEN i % 2 = 0 THEN 'male' ELSE 'U' END END AS sex,
        ({as_of_sql} - INTERVAL (18 * 365 + hash(i, 22) % (82 * 365)) DAY)::DATE AS birth_date,
        'site_' || lpad((hash(i, 23) % 20)::VARCHAR, 2, '0') AS site"""
    return f"""
    WITH ids AS (SELECT range AS i, hash(range, 21) % 100 AS s, hash(range, 24) % 10000 AS d
                 FROM range({n}))
    SELECT patient_id, sex, birth_date, site FROM (
        SELECT 0 AS part, i, {row} FROM ids
        UNION ALL
        SELECT 1 AS part, i, {row} FROM ids WHERE d = 0
        UNION ALL
        SELECT 2 AS part, i, 'Q' || lpad(i::VARCHAR, 8, '0'), 'F', NULL::DATE, 'site_00'
        FROM ids WHERE d = 1
    ) ORDER BY part, i
    """


def generate(
    data_dir: Path, n_patients: int, labs_per_patient: int, as_of: date, threads: int | None
) -> dict[str, Any]:
    """Write the extracts into data_dir/extracts unless the same ones are already there."""
    import duckdb

    extracts = data_dir / "extracts"
    manifest_path = data_dir / "bench_manifest.json"
    total = n_patients * labs_per_patient
    n_files = max(1, math.ceil(total / ROWS_PER_FILE))
    params = {
        "generator_version": GENERATOR_VERSION,
        "duckdb_version": duckdb.__version__,
        "patients": n_patients,
        "labs_per_patient": labs_per_patient,
        "lab_rows": total,
        "lab_files": n_files,
        "as_of": as_of.isoformat(),
    }
    names = ["patients.parquet"] + [f"labs_{k:03d}.parquet" for k in range(n_files)]
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
        except ValueError:
            old = {}
        present = sorted(p.name for p in extracts.glob("*.parquet")) if extracts.is_dir() else []
        if old.get("params") == params and present == sorted(names):
            say(f"reusing generated extracts in {extracts} ({total:,} lab rows)")
            return old | {"reused": True}
    manifest_path.unlink(missing_ok=True)
    if extracts.exists():
        shutil.rmtree(extracts)
    extracts.mkdir(parents=True)
    figures: dict[str, Any] = {"params": params, "files": {}}
    con = duckdb.connect()
    _configure(con, None, threads)
    con.execute("SET preserve_insertion_order = true")
    _create_spec_tables(con)
    with measured(figures):
        say(f"generating patients.parquet ({n_patients:,} patients)")
        con.execute(
            f"COPY ({_patients_select(n_patients, as_of)}) TO {_q(extracts / 'patients.parquet')} (FORMAT parquet)"
        )
        for k in range(n_files):
            start, stop = k * ROWS_PER_FILE, min(total, (k + 1) * ROWS_PER_FILE)
            t0 = time.perf_counter()
            path = extracts / f"labs_{k:03d}.parquet"
            con.execute(
                f"COPY ({_labs_select(start, stop, n_patients, as_of)}) TO {_q(path)} (FORMAT parquet)"
            )
            say(
                f"generated {path.name} ({stop - start:,} rows) in {time.perf_counter() - t0:.1f} s"
                f" [{k + 1}/{n_files}]"
            )
    con.close()
    figures["files"] = {p.name: p.stat().st_size for p in sorted(extracts.iterdir())}
    figures["bytes"] = sum(figures["files"].values())
    figures["reused"] = False
    manifest_path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    say(
        f"generated {total:,} lab rows, {_fmt_bytes(figures['bytes'])} of Parquet in {figures['seconds']:.1f} s"
    )
    return figures


# -- 2. floors -------------------------------------------------------------------------------
def _labs_glob(extracts: Path) -> str:
    return _q((extracts / "labs_*.parquet").as_posix())


FLOOR_CRITERIA = (
    "b12_deficient", "b12_indeterminate", "mma_elevated", "homocysteine_elevated", "folate_low",
    "anemia", "critical_anemia", "leukopenia", "neutropenia", "thrombocytopenia", "macrocytosis",
    "pancytopenia", "deficiency_with_cytopenia", "cytopenia_b12_untested", "pseudo_tma_suspect",
)  # fmt: skip


def _screen_floor_sql(
    patients_parquet: str, as_of: date, var: dict[str, float], max_lookback_days: int
) -> str:
    """One bare query: the 15 lab criteria of the rules file, per patient, from the raw table t.

    Same semantics as the pipeline on the bench data (trimmed ids and key spellings aside):
    analyte from LOINC else test name, unit key computed once per distinct spelling, value
    parsed with a cast ('1,200' through a guarded regex), censored values, rows that the
    pipeline would quarantine left out (unknown patient, unreadable, negative or implausible
    value, unit not fitting, date after as-of), patients under the minimum age left out, latest by collected_at then result_id (numeric ids as numbers),
    an MMA drawn on the B12's day or later cancels b12_indeterminate.
    """
    as_of_sql = f"DATE {_q(as_of.isoformat())}"

    def v(name: str) -> str:
        return repr(float(var[name]))

    analytes = [
        "b12",
        "mma",
        "homocysteine",
        "folate",
        "hgb",
        "wbc",
        "anc",
        "platelets",
        "mcv",
        "ldh",
    ]
    pivots = ",\n        ".join(
        f"max(v) FILTER (analyte = '{a}') AS {a}_v, max(censor) FILTER (analyte = '{a}') AS {a}_c, "
        f"max(ts) FILTER (analyte = '{a}') AS {a}_ts"
        for a in analytes
    )
    return f"""
    WITH pts AS (
        SELECT patient_id, any_value(CASE lower(trim(sex)) WHEN 'm' THEN 'M' WHEN 'male' THEN 'M'
                   WHEN 'f' THEN 'F' WHEN 'female' THEN 'F' ELSE 'U' END) AS sex
        FROM read_parquet({_q(patients_parquet)})
        WHERE patient_id IS NOT NULL AND birth_date IS NOT NULL AND birth_date <= {as_of_sql}
            -- screened ages: at least the minimum age, at most the plausible maximum
            AND birth_date <= {as_of_sql} - INTERVAL {int(var["settings.minimum_age"])} YEAR
            AND birth_date >= {as_of_sql} - INTERVAL {int(var["settings.max_age_years"])} YEAR
        GROUP BY patient_id
    ),
    units AS (
        SELECT d.unit, r.analyte, r.factor_to_canonical AS factor
        FROM (SELECT DISTINCT unit FROM t) d
        JOIN ref_lab_units r ON r.unit_key = unit_key(d.unit)
    ),
    tests AS (
        SELECT m.*, w.lookback_days::INTEGER AS lookback_days, w.plausible_low, w.plausible_high
        FROM (
            SELECT d.loinc, d.test_name, coalesce(c.analyte, n.analyte) AS analyte
            FROM (SELECT DISTINCT loinc, test_name FROM t) d
            LEFT JOIN rule_lab_codes c ON c.loinc = d.loinc
            LEFT JOIN ref_lab_test_names n ON n.test_name_key = text_key(d.test_name)
        ) m
        JOIN rule_analytes w ON w.analyte = m.analyte
    ),
    recent AS (
        SELECT patient_id, collected_at, loinc, test_name, unit, result_id,
               CASE WHEN value LIKE '<=%' THEN '<=' WHEN value LIKE '<%' THEN '<'
                    WHEN value LIKE '>=%' THEN '>=' WHEN value LIKE '>%' THEN '>' END AS censor,
               ltrim(value, '<>= ') AS vt
        FROM t
        WHERE collected_at < ({as_of_sql} + 1)::TIMESTAMP
          AND collected_at >= ({as_of_sql} - {int(max_lookback_days)})::TIMESTAMP
    ),
    labs AS (
        SELECT r.patient_id, tests.analyte, r.collected_at AS ts, r.result_id, r.censor,
               round(CASE WHEN contains(r.vt, ',')
                          THEN CASE WHEN regexp_full_match(r.vt, '-?\\d{{1,3}}(,\\d{{3}})+(\\.\\d+)?')
                                    THEN replace(r.vt, ',', '')::DOUBLE END
                          ELSE TRY_CAST(r.vt AS DOUBLE) END * units.factor,
                     {int(var["settings.canonical_decimals"])}) AS v,
               tests.plausible_low, tests.plausible_high
        FROM recent r
        JOIN tests ON tests.loinc IS NOT DISTINCT FROM r.loinc
                  AND tests.test_name IS NOT DISTINCT FROM r.test_name
        JOIN units ON units.unit = r.unit AND units.analyte = tests.analyte
        SEMI JOIN pts ON pts.patient_id = r.patient_id
        WHERE r.collected_at::DATE >= {as_of_sql} - tests.lookback_days
    ),
    valid AS (SELECT * FROM labs WHERE v >= 0 AND v BETWEEN plausible_low AND plausible_high),
    latest AS (
        SELECT patient_id, analyte,
               arg_max(struct_pack(v := v, censor := censor, ts := ts),
                       struct_pack(ts := ts, rid_num := TRY_CAST(result_id AS DOUBLE),
                                   rid := result_id)) AS r
        FROM valid
        GROUP BY patient_id, analyte
    ),
    mma_any AS (
        SELECT patient_id, max(ts) AS last_mma FROM valid WHERE analyte = 'mma' GROUP BY patient_id
    ),
    wide AS (
        SELECT patient_id, {pivots}
        FROM (SELECT patient_id, analyte, r.v AS v, r.censor AS censor, r.ts AS ts FROM latest)
        GROUP BY patient_id
    ),
    base AS (
        SELECT wide.*, pts.sex, mma_any.last_mma,
            is_below(b12_v, b12_c, {v("b12_deficient.below_pg_ml")}) AS b12_deficient,
            b12_v IS NOT NULL
                AND NOT is_below(b12_v, b12_c, {v("b12_deficient.below_pg_ml")})
                AND is_at_most(b12_v, b12_c, {v("b12_indeterminate.upper_pg_ml")})
                AND NOT coalesce(mma_any.last_mma::DATE >= b12_ts::DATE, false) AS b12_indeterminate,
            is_above(mma_v, mma_c, {v("mma_elevated.above_nmol_l")}) AS mma_elevated,
            is_above(homocysteine_v, homocysteine_c, {v("homocysteine_elevated.above_umol_l")}) AS homocysteine_elevated,
            is_below(folate_v, folate_c, {v("folate_low.below_ng_ml")}) AS folate_low,
            is_below(hgb_v, hgb_c, CASE pts.sex WHEN 'M' THEN {v("anemia.male_below_g_dl")}
                WHEN 'F' THEN {v("anemia.female_below_g_dl")} ELSE {v("anemia.unknown_sex_below_g_dl")} END) AS anemia,
            is_below(hgb_v, hgb_c, {v("critical_anemia.below_g_dl")}) AS critical_anemia,
            is_below(wbc_v, wbc_c, {v("leukopenia.below_10e9_l")}) AS leukopenia,
            is_below(anc_v, anc_c, {v("neutropenia.below_10e9_l")}) AS neutropenia,
            is_below(platelets_v, platelets_c, {v("thrombocytopenia.below_10e9_l")}) AS thrombocytopenia,
            is_above(mcv_v, mcv_c, {v("macrocytosis.above_fl")}) AS macrocytosis,
            is_above(ldh_v, ldh_c, {v("pseudo_tma_suspect.ldh_above_u_l")}) AS ldh_high
        FROM wide
        JOIN pts ON pts.patient_id = wide.patient_id
        LEFT JOIN mma_any ON mma_any.patient_id = wide.patient_id
    ),
    flags AS (
        SELECT patient_id,
            coalesce(b12_deficient, false) AS b12_deficient,
            coalesce(b12_indeterminate, false) AS b12_indeterminate,
            coalesce(mma_elevated, false) AS mma_elevated,
            coalesce(homocysteine_elevated, false) AS homocysteine_elevated,
            coalesce(folate_low, false) AS folate_low,
            coalesce(anemia, false) AS anemia,
            coalesce(critical_anemia, false) AS critical_anemia,
            coalesce(leukopenia, false) AS leukopenia,
            coalesce(neutropenia, false) AS neutropenia,
            coalesce(thrombocytopenia, false) AS thrombocytopenia,
            coalesce(macrocytosis, false) AS macrocytosis,
            coalesce(ldh_high, false) AS ldh_high,
            b12_v IS NOT NULL OR mma_v IS NOT NULL AS b12_tested
        FROM base
    )
    SELECT patient_id, b12_deficient, b12_indeterminate, mma_elevated, homocysteine_elevated,
        folate_low, anemia, critical_anemia, leukopenia, neutropenia, thrombocytopenia,
        macrocytosis,
        anemia AND leukopenia AND thrombocytopenia AS pancytopenia,
        (b12_deficient OR mma_elevated)
            AND (anemia OR leukopenia OR neutropenia OR thrombocytopenia) AS deficiency_with_cytopenia,
        (anemia OR leukopenia OR neutropenia OR thrombocytopenia OR macrocytosis)
            AND NOT b12_tested AS cytopenia_b12_untested,
        (b12_deficient OR mma_elevated) AND anemia AND thrombocytopenia AND ldh_high
            AS pseudo_tma_suspect
    FROM flags
    """


def floors(
    extracts: str, db: str, as_of_iso: str, memory_limit: str | None, threads: int | None
) -> dict:
    """Both floors in one fresh process and database, as a run would meet them: the load floor
    (bare CTAS of the lab Parquet) and then the screening floor (one bare query over that table
    computing the lab criteria)."""
    from pipeline.resources import data_dir
    from pipeline.rules import apply_rules, load_rules
    from pipeline.screening.criteria import load_macros

    as_of = date.fromisoformat(as_of_iso)
    con = _connect(Path(db), memory_limit, threads)
    # Set-up (not timed, tiny): the rules' tables and thresholds, the reference CSVs and the
    # comparison macros, as the pipeline's prepare stage makes them.
    rules = load_rules(None)
    load_macros(con)
    apply_rules(con, rules)
    for table, name in (
        ("ref_lab_units", "lab_units.csv"),
        ("ref_lab_test_names", "lab_test_names.csv"),
    ):
        path = _q((data_dir() / name).as_posix())
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS "
            f"SELECT * FROM read_csv({path}, header = true, all_varchar = true)"
        )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE ref_lab_units AS SELECT analyte, unit_key, "
        "factor_to_canonical::DOUBLE AS factor_to_canonical FROM ref_lab_units"
    )

    load: dict[str, Any] = {}
    say("load floor: CREATE TABLE t AS SELECT * FROM read_parquet('labs_*.parquet')")
    with measured(load):
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet({_labs_glob(Path(extracts))})")
    rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
    load |= {"rows": rows, "rows_per_s": round(rows / load["seconds"])}
    load["duckdb_memory_bytes"] = _duckdb_memory(con)
    say(f"load floor: {rows:,} rows in {load['seconds']:.2f} s")

    sql = _screen_floor_sql(
        (Path(extracts) / "patients.parquet").as_posix(),
        as_of,
        rules.variables(),
        max(a.lookback_days for a in rules.spec.analytes.values()),
    )
    screen: dict[str, Any] = {"rows": rows}
    say("screening floor: one query computing the 15 lab criteria")
    with measured(screen):
        con.execute("CREATE TEMP TABLE floor_flags AS " + sql)
    screen["rows_per_s"] = round(rows / screen["seconds"])
    sums = ", ".join(f"count(*) FILTER ({c})" for c in FLOOR_CRITERIA)
    counts = con.execute(f"SELECT {sums} FROM floor_flags").fetchone()
    screen["patients_by_criterion"] = dict(zip(FLOOR_CRITERIA, map(int, counts), strict=True))
    screen["duckdb_memory_bytes"] = _duckdb_memory(con)
    con.close()
    load["db_bytes"] = Path(db).stat().st_size
    say(f"screening floor: {screen['seconds']:.2f} s ({screen['rows_per_s'] / 1e6:.1f}M rows/s)")
    return {"load_floor": load, "screen_floor": screen}


# -- 3. the pipeline -------------------------------------------------------------------------
_LABEL_PATTERNS = [
    (re.compile(r"--\s*Criterion (\w+)"), "criterion {0}"),
    (re.compile(r"^\s*(CREATE (?:OR REPLACE )?(?:TEMP )?TABLE \w+)", re.I), "{0}"),
    (re.compile(r"^\s*(INSERT (?:OR REPLACE )?INTO \w+)", re.I), "{0}"),
    (re.compile(r"^\s*(DELETE FROM \w+)", re.I), "{0}"),
    (re.compile(r"^\s*(COPY) \(SELECT .*? FROM (\w+)", re.I | re.S), "{0} {1}"),
    (re.compile(r"^\s*(ALTER TABLE \w+)", re.I), "{0}"),
]


def _label(sql: str) -> str:
    text = sql.strip()
    found = []
    for pattern, fmt in _LABEL_PATTERNS:
        m = pattern.search(text)
        if m:
            found.append(fmt.format(*m.groups()))
            if not fmt.startswith("criterion"):
                break
    if found:
        return " / ".join(dict.fromkeys(found))
    return re.sub(r"\s+", " ", text)[:70]


class TracingConnection:
    """Wraps a DuckDB connection and times every execute() (what the SQL costs per stage)."""

    def __init__(self, con, log: list[dict]) -> None:
        self._con = con
        self._log = log
        self.stage = "?"

    def execute(self, sql, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._con.execute(sql, *args, **kwargs)
        finally:
            self._log.append(
                {"stage": self.stage, "sql": _label(sql), "seconds": time.perf_counter() - start}
            )

    def __getattr__(self, name: str):
        return getattr(self._con, name)


def _timed_function(module, name: str, bucket: dict[str, list[float]]) -> None:
    """Replace module.name with a wrapper adding its run time and calls to bucket[name]."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            entry = bucket.setdefault(name, [0.0, 0])
            entry[0] += time.perf_counter() - start
            entry[1] += 1

    setattr(module, name, wrapper)


def _top_statements(log: list[dict], stage: str, n: int = 8) -> list[dict]:
    totals: dict[str, list[float]] = {}
    for item in log:
        if item["stage"] == stage:
            entry = totals.setdefault(item["sql"], [0.0, 0])
            entry[0] += item["seconds"]
            entry[1] += 1
    ranked = sorted(totals.items(), key=lambda kv: -kv[1][0])[:n]
    return [{"sql": k, "seconds": round(s, 3), "calls": c} for k, (s, c) in ranked]


def _error_line(exc: BaseException) -> str:
    """Type and first line of an error, and of the one it masks (an aborted transaction hides
    the error that aborted it)."""

    def one(e: BaseException) -> str:
        text = str(e).strip().splitlines()
        return f"{type(e).__name__}: {text[0] if text else ''}"[:300]

    inner = exc.__cause__ or exc.__context__
    return one(exc) + (f" (after {one(inner)})" if inner is not None else "")


def pipeline_run(
    extracts: str, db: str, out: str, as_of_iso: str, memory_limit: str | None, threads: int | None
) -> dict:
    from pipeline import runner as runner_module
    from pipeline.publish import outputs as outputs_module
    from pipeline.reports import audit as audit_module
    from pipeline.runner import RunConfig, ScreeningRun
    from pipeline.store import validate as validate_module

    db_path = Path(db)
    for p in (db_path, db_path.with_name(db_path.name + ".wal")):
        p.unlink(missing_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    # Python-side work timed apart from the SQL: the pandera checks (called once per batch)
    # and the output writers (inclusive of the SQL they send).
    python_time: dict[str, list[float]] = {}
    _timed_function(validate_module, "failing_rows", python_time)
    for fn in ("build_record", "_write_xlsx"):
        _timed_function(outputs_module, fn, python_time)
    for fn in ("collect", "audit_document", "write_audit"):  # the audit report's three steps
        _timed_function(audit_module, fn, python_time)
    _timed_function(runner_module, "compute_measures", python_time)
    log: list[dict] = []
    run = ScreeningRun(
        RunConfig(
            extracts=Path(extracts),
            out=Path(out),
            as_of=date.fromisoformat(as_of_iso),
            db=db_path,
            progress=False,
        )
    )
    stages: dict[str, dict[str, Any]] = {}
    tracer: TracingConnection | None = None
    try:
        for name in ("prepare", "ingest", "validate", "screen", "build_outputs", "publish"):
            say(f"pipeline: {name} …")
            figures: dict[str, Any] = {}
            if tracer is not None:
                tracer.stage = name
            before = {k: list(v) for k, v in python_time.items()}
            with measured(figures):
                getattr(run, name)()
            if name == "prepare":
                # Trace every later statement; apply the bench's memory/threads settings.
                _configure(run.con, memory_limit, threads)
                tracer = TracingConnection(run.con, log)
                run.con = tracer
            figures["sql_seconds"] = round(sum(i["seconds"] for i in log if i["stage"] == name), 3)
            figures["top_sql"] = _top_statements(log, name)
            figures["python"] = {
                k: {
                    "seconds": round(v[0] - before.get(k, [0.0, 0])[0], 3),
                    "calls": v[1] - before.get(k, [0.0, 0])[1],
                }
                for k, v in python_time.items()
                if v[1] > before.get(k, [0.0, 0])[1]
            }
            if name == "validate":
                pandera = figures["python"].get("failing_rows", {"seconds": 0.0, "calls": 0})
                figures["pandera_seconds"] = pandera["seconds"]
                figures["pandera_batches"] = pandera["calls"]
                figures["rows_checked"] = {k: v.rows_checked for k, v in run.validation.items()}
                figures["fetch_and_other_seconds"] = round(
                    figures["seconds"] - figures["sql_seconds"] - figures["pandera_seconds"], 3
                )
            if run.con is not None and name != "publish":
                figures["duckdb_memory_bytes"] = _duckdb_memory(run.con)
            stages[name] = figures
            say(
                f"pipeline: {name} done in {figures['seconds']:.2f} s, "
                f"peak RSS {_fmt_bytes(figures['peak_rss_bytes'])}"
            )
    except Exception as exc:  # noqa: BLE001 - a failed stage is a result of the bench too
        figures["error"] = _error_line(exc)
        # which statement failed (the last one traced in the stage) and where the time went
        ran = [i for i in log if i["stage"] == name]
        if ran:
            figures["failed_sql"] = ran[-1]["sql"]
            figures["top_sql"] = _top_statements(log, name)
        stages[name] = figures
        say(f"pipeline: {name} FAILED after {figures.get('seconds', 0):.1f} s: {figures['error']}")
        if ran:
            say(f"pipeline: the failing statement: {figures['failed_sql']}")
        with contextlib.suppress(Exception):
            run.fail(exc)
        return {"stages": stages, "error": f"{name}: {figures['error']}"}
    record = run.record
    db_bytes = db_path.stat().st_size if db_path.exists() else None
    return {
        "stages": stages,
        "rows_read": record["counts"]["rows_read"],
        "rows_quarantined": record["counts"]["rows_quarantined"],
        "patients_by_criterion": record["counts"]["patients_by_criterion"],
        "worklist": record["counts"]["worklist"],
        "db_bytes": db_bytes,
        "output_bytes": {
            p.name: p.stat().st_size for p in sorted(Path(out).iterdir()) if p.is_file()
        },
    }


# -- running steps in fresh processes --------------------------------------------------------
def _exit_with_parent(parent: int) -> None:
    """End this step's process when the bench that started it is gone (killed, say): a step
    left running would hold its database's lock and its memory for the next bench."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _child(queue, fn_name: str, args: tuple, parent: int | None = None) -> None:
    if parent is not None:
        _exit_with_parent(parent)
    try:
        queue.put(("ok", globals()[fn_name](*args)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        import traceback

        queue.put(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def in_fresh_process(fn: Callable, *args) -> dict:
    """Run fn(*args) in a spawned process, so each step starts from a clean RSS."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn.__name__, args, os.getpid()))
    proc.start()
    try:
        status, payload = queue.get()
        proc.join()
    finally:
        if proc.is_alive():  # interrupted: the step goes with the bench
            proc.terminate()
    if status != "ok":
        raise click.ClickException(f"{fn.__name__} failed: {payload}")
    return payload


def _code_version() -> dict[str, Any]:
    """The project's git commit and whether the tree had changes (which code was measured)."""
    import subprocess

    from pipeline import __file__ as package_file

    root = Path(package_file).resolve().parent.parent
    info: dict[str, Any] = {"path": str(root)}
    snapshot = root / "SNAPSHOT"  # a `git archive` export names its commit here
    if snapshot.exists():
        info["commit"] = snapshot.read_text(encoding="utf-8").strip()
        return info
    try:
        info["commit"] = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        info["changed_files"] = len(changed)
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


# -- 4. report -------------------------------------------------------------------------------
def summarise(result: dict) -> dict:
    pipe = result["pipeline"]
    st = pipe["stages"]
    lf, sf = result["load_floor"], result["screen_floor"]
    rows = lf["rows"]
    done = {k: v for k, v in st.items() if "error" not in v}
    peak = max(s["peak_rss_bytes"] for s in st.values())
    total = sum(s["seconds"] for s in st.values())
    out: dict[str, Any] = {
        "lab_rows": rows,
        "pipeline_completed": "error" not in pipe,
        "pipeline_seconds": round(total, 3),
        "peak_rss_bytes": peak,
        "total_ratio": round(total / (lf["seconds"] + sf["seconds"]), 2),
        "aims_met": {
            "peak_rss": peak <= AIMS["peak_rss_bytes"],
            "total": "error" not in pipe
            and total / (lf["seconds"] + sf["seconds"]) <= AIMS["total_ratio"],
        },
    }
    if "ingest" in done and "validate" in done:
        load = st["ingest"]["seconds"] + st["validate"]["seconds"]
        out |= {
            "ingest_validate_seconds": round(load, 3),
            "load_ratio": round(load / lf["seconds"], 2),
            "ingest_validate_rows_per_s": round(rows / load),
        }
        out["aims_met"]["ingest_validate"] = load / lf["seconds"] <= AIMS["load_ratio"]
    if "screen" in done:
        out |= {
            "screen_ratio": round(st["screen"]["seconds"] / sf["seconds"], 2),
            "screen_rows_per_s": round(rows / st["screen"]["seconds"]),
        }
        out["aims_met"]["screen"] = st["screen"]["seconds"] / sf["seconds"] <= AIMS["screen_ratio"]
    if out["pipeline_completed"]:
        out["pipeline_rows_per_s"] = round(rows / total)
        mismatches = {
            c: {"pipeline": pipe["patients_by_criterion"].get(c), "floor": n}
            for c, n in sf["patients_by_criterion"].items()
            if pipe["patients_by_criterion"].get(c) != n
        }
        out["floor_counts_match_pipeline"] = not mismatches
        out["count_mismatches"] = mismatches
    return out


def render_table(result: dict) -> str:
    s = result["summary"]
    st = result["pipeline"]["stages"]
    lf, sf = result["load_floor"], result["screen_floor"]
    rows = s["lab_rows"]

    def line(name: str, secs: float, peak: int | None, note: str = "") -> str:
        rate = f"{rows / secs / 1e6:8.1f}" if secs else "       -"
        return f"{name:<28}{secs:>9.2f}{rate:>10}{_fmt_bytes(peak):>12}  {note}"

    out = [
        f"b12screen bench: {result['params']['patients']:,} patients, {rows:,} lab rows "
        f"({result['params']['lab_files']} Parquet files, {_fmt_bytes(result['generation'].get('bytes'))}), "
        f"as of {result['params']['as_of']}, DuckDB {result['versions']['duckdb']}, "
        f"{os.cpu_count()} cores",
        "",
        f"{'step':<28}{'wall s':>9}{'Mrows/s':>10}{'peak RSS':>12}  note",
        "-" * 92,
        line("floor: load (CTAS parquet)", lf["seconds"], lf["peak_rss_bytes"]),
        line(
            "floor: screening query",
            sf["seconds"],
            sf["peak_rss_bytes"],
            "15 lab criteria, one query",
        ),
        "-" * 92,
    ]
    for name, fig in st.items():
        note = ""
        if "error" in fig:
            note = f"FAILED: {fig['error']}"
        elif name == "validate":
            note = (
                f"SQL {fig['sql_seconds']:.1f} s, pandera {fig['pandera_seconds']:.1f} s "
                f"({fig['pandera_batches']} batches), fetch/other {fig['fetch_and_other_seconds']:.1f} s"
            )
        elif name == "build_outputs":
            py = fig.get("python", {})
            note = f"SQL {fig['sql_seconds']:.1f} s; " + ", ".join(
                f"{k.lstrip('_')} {v['seconds']:.1f} s" for k, v in py.items()
            )
        elif fig.get("top_sql"):
            top = fig["top_sql"][0]
            note = f"top: {top['sql'][:40]} {top['seconds']:.1f} s"
        out.append(line(f"pipeline: {name}", fig["seconds"], fig["peak_rss_bytes"], note))
    aims = s["aims_met"]

    def verdict(key: str) -> str:
        return "met" if aims[key] else "NOT met"

    out += ["-" * 92, line("pipeline: total", s["pipeline_seconds"], s["peak_rss_bytes"]), ""]
    if not s["pipeline_completed"]:
        out.append(f"the run FAILED in {result['pipeline']['error']}")
    if "load_ratio" in s:
        out.append(
            f"ingest + validate  {s['ingest_validate_seconds']:8.2f} s = {s['load_ratio']:.2f}x "
            f"the load floor (aim <= {AIMS['load_ratio']}x): {verdict('ingest_validate')}"
        )
    if "screen_ratio" in s:
        out.append(
            f"screen             {st['screen']['seconds']:8.2f} s = {s['screen_ratio']:.2f}x "
            f"the screening floor (aim <= {AIMS['screen_ratio']}x): {verdict('screen')}"
        )
    out.append(
        f"whole run          {s['pipeline_seconds']:8.2f} s = {s['total_ratio']:.2f}x "
        f"the two floors together (aim <= {AIMS['total_ratio']}x): {verdict('total')}"
    )
    out.append(
        f"peak RSS           {_fmt_bytes(s['peak_rss_bytes']):>10} "
        f"(aim <= {AIMS['peak_rss_bytes'] // GIB} GiB): {verdict('peak_rss')}"
    )
    if "floor_counts_match_pipeline" in s:
        match = s["floor_counts_match_pipeline"]
        out.append(
            "floor's criterion counts equal the pipeline's: "
            + ("yes" if match else "NO " + json.dumps(s["count_mismatches"]))
        )
    return "\n".join(out)


@click.command("bench")
@click.option(
    "--patients",
    "n_patients",
    type=click.IntRange(min=100),
    default=1_000_000,
    show_default=True,
    help="Synthetic patients.",
)
@click.option(
    "--labs-per-patient",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Lab rows per patient on average (50 -> 50M rows for 1M patients).",
)
@click.option(
    "--dir",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("bench-data"),
    show_default=True,
    help="Folder for the Parquet extracts, the databases and the run's outputs.",
)
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2026-11-24",
    show_default=True,
    help="As-of date of the data and the run.",
)
@click.option(
    "--keep/--no-keep",
    default=True,
    show_default=True,
    help="Keep the generated Parquet for the next bench (databases and outputs are always removed).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write every figure to this JSON file.",
)
@click.option(
    "--memory-limit",
    default=None,
    help="DuckDB memory_limit for the floors and the run (e.g. 3GB). Default: DuckDB's own (80% of RAM), as in a normal run.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="DuckDB threads. Default: DuckDB's own (all cores).",
)
def bench(
    n_patients: int,
    labs_per_patient: int,
    data_dir: Path,
    as_of: datetime,
    keep: bool,
    json_path: Path | None,
    memory_limit: str | None,
    threads: int | None,
) -> None:
    """Generate synthetic extracts as Parquet and time a run stage by stage against two floors.

    \b
    Floors, measured in the same bench on the same files: a bare DuckDB CTAS of the lab
    Parquet (loading), and one bare DuckDB query computing the lab criteria (screening).
    Aims (the engine issue's): the whole run <= 2x both floors together, ingest + validate
    <= 1.5x the load floor, screen <= 1.5x the screening floor, peak RSS <= 6 GiB. Progress
    goes to stderr; the table to stdout.
    """
    import duckdb
    import pandera
    import polars

    day = as_of.date()
    data_dir.mkdir(parents=True, exist_ok=True)
    extracts = data_dir / "extracts"
    floor_db = data_dir / "floor.duckdb"
    run_db = data_dir / "pipeline.duckdb"
    out = data_dir / "out"
    result: dict[str, Any] = {
        "started_at": datetime.now().isoformat(timespec="seconds"),
        "code": _code_version(),
        "machine": {
            "cores": os.cpu_count(),
            "ram_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        },
        "versions": {
            "duckdb": duckdb.__version__,
            "polars": polars.__version__,
            "pandera": pandera.__version__,
            "python": sys.version.split()[0],
        },
        "settings": {"memory_limit": memory_limit, "threads": threads},
    }
    try:
        gen = generate(data_dir, n_patients, labs_per_patient, day, threads)
        result["params"] = gen["params"]
        result["generation"] = {
            k: gen.get(k) for k in ("seconds", "peak_rss_bytes", "bytes", "reused")
        }
        ext, iso = str(extracts), day.isoformat()
        result |= in_fresh_process(floors, ext, str(floor_db), iso, memory_limit, threads)
        for p in (floor_db, floor_db.with_name(floor_db.name + ".wal")):
            p.unlink(missing_ok=True)
        result["pipeline"] = in_fresh_process(
            pipeline_run, ext, str(run_db), str(out), iso, memory_limit, threads
        )
        result["summary"] = summarise(result)
    finally:
        for p in (floor_db, run_db):
            for q in (p, p.with_name(p.name + ".wal")):
                q.unlink(missing_ok=True)
            shutil.rmtree(p.with_name(p.name + ".tmp"), ignore_errors=True)  # DuckDB spill files
        shutil.rmtree(out, ignore_errors=True)
        if not keep:
            shutil.rmtree(extracts, ignore_errors=True)
            (data_dir / "bench_manifest.json").unlink(missing_ok=True)
    click.echo(render_table(result))
    if json_path:
        json_path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
        say(f"figures written to {json_path}")


if __name__ == "__main__":
    bench()
