"""The entry point: `generate_population` draws a synthetic screening population with planted
cases and writes its extracts and its answer key.

`generate_population` writes a folder of canonical extracts (docs/inputs.md) and returns a
`DemoTruth` holding the flags a correct run over that folder must produce, for all 26 criteria.
It is used by the demo command and by the end-to-end test; the answer key comes from two sources
that do not share code with the pipeline: `oracle_flags` (`pipeline.demo.oracle`) over the
records the generator chose for the background population (`pipeline.demo.population`,
`pipeline.demo.histories`), and the criteria written by hand for each planted patient
(`pipeline.demo.planted`). The messy rows (`pipeline.demo.messy`) come on top and change no
flag.

The answer key also goes to ``truth_dir`` (default: a ``truth`` folder beside the extracts,
never inside them): ``expected_flags.csv``, ``planted.csv`` (with each case's purpose) and
``messy.csv``. The same seed gives byte-identical files: every draw comes from one
``random.Random(seed)`` in the order `generate_population` calls for it, so moving a call
changes every file. No patient data is logged.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

from pipeline.demo.histories import DxEntry, MedEntry, _dx_row, _history, _med_row, _order
from pipeline.demo.messy import (
    _messy_dx_rows,
    _messy_lab_rows,
    _messy_med_rows,
    _messy_patient_rows,
)
from pipeline.demo.oracle import CleanResult, Diagnosis, PatientInfo, oracle_flags
from pipeline.demo.planted import (
    PLANTED,
    _planted_dx_rows,
    _planted_med_rows,
    _planted_patient_rows,
    _planted_rows,
)
from pipeline.demo.population import _background_labs, _make_patient, _patient_row
from pipeline.demo.truth import DemoTruth
from pipeline.demo.writers import _write_extracts, _write_truth
from pipeline.progress import Progress

log = logging.getLogger(__name__)

DEFAULT_AS_OF = date(2026, 11, 24)


def generate_population(
    out_dir: Path,
    *,
    n_patients: int = 3000,
    as_of: date = DEFAULT_AS_OF,
    seed: int = 12,
    truth_dir: Path | None = None,
    progress: Progress | None = None,
) -> DemoTruth:
    """Write a synthetic extracts folder to ``out_dir`` and its answer key to ``truth_dir``.

    ``n_patients`` counts the patients written (planted ones included; the few broken patient
    rows come on top). ``truth_dir`` defaults to ``out_dir.parent / "truth"`` and must not be
    inside ``out_dir``, since the pipeline reads every ``labs*``/``patients*`` file there.
    ``progress`` shows the steps on a terminal (a 60k-patient population takes half a minute).
    """
    progress = progress or Progress(False)
    progress.total = 4
    out_dir = Path(out_dir)
    truth_dir = Path(truth_dir) if truth_dir is not None else out_dir.parent / "truth"
    if truth_dir.resolve() == out_dir.resolve() or out_dir.resolve() in truth_dir.resolve().parents:
        raise ValueError("truth_dir must not be inside the extracts folder")
    n_background = n_patients - len(PLANTED)
    if n_background < 100:
        raise ValueError(f"n_patients must be at least {len(PLANTED) + 100}")
    rng = random.Random(seed)

    with progress.stage("demo-patients", f"drawing {n_patients:,} patients and their lab results"):
        patients = [_make_patient(rng, i, as_of) for i in range(1, n_background + 1)]
        lab_rows, results = _background_labs(rng, patients, as_of)
        progress.note(f"{len(patients):,} background patients, {len(lab_rows):,} lab rows")
    with progress.stage("demo-histories", "drawing diagnoses and medication orders"):
        labs_of: dict[str, list[CleanResult]] = defaultdict(list)
        for r in results:
            labs_of[r.patient_id].append(r)
        dx_entries: list[DxEntry] = []
        med_entries: list[MedEntry] = []
        for p in patients:
            dx, meds = _history(rng, p, labs_of[p.patient_id], as_of)
            dx_entries += dx
            med_entries += meds
    with progress.stage("demo-oracle", "working out the expected flags (the answer key)"):
        expected = oracle_flags(
            {p.patient_id: PatientInfo(p.sex, p.birth_date) for p in patients},
            results,
            [_order(m.patient_id, m, as_of) for m in med_entries],
            [
                Diagnosis(d.patient_id, d.key, as_of - timedelta(days=d.days_ago))
                for d in dx_entries
            ],
            as_of,
        )
    planted = {pp.patient_id: set(pp.expected) for pp in PLANTED}
    expected |= {(pid, c) for pid, crits in planted.items() for c in crits}
    lab_rows += _planted_rows(as_of)
    with_labs = {r.patient_id for r in results}
    lab_rows += _messy_lab_rows(
        rng, [p for p in patients if p.patient_id in with_labs], as_of, len(lab_rows)
    )
    rng.shuffle(lab_rows)

    patient_rows = [_patient_row(p) for p in patients] + _planted_patient_rows(as_of)
    broken_patients = _messy_patient_rows()
    patient_rows += [row for _, row in broken_patients]
    rng.shuffle(patient_rows)

    meds: list[tuple[str | None, dict[str, str]]] = [
        (None, _med_row(rng, m, as_of)) for m in med_entries
    ]
    meds += _messy_med_rows(rng, [row for _, row in meds], as_of)
    meds += _planted_med_rows(as_of)
    rng.shuffle(meds)
    dxs: list[tuple[str | None, dict[str, str]]] = [
        (None, _dx_row(rng, d, as_of)) for d in dx_entries
    ]
    dxs += _messy_dx_rows(rng, [row for _, row in dxs], as_of)
    dxs += _planted_dx_rows(as_of)
    rng.shuffle(dxs)
    with progress.stage("demo-write", f"writing the extracts to {out_dir}"):
        _write_extracts(
            out_dir, patient_rows, lab_rows, [row for _, row in meds], [row for _, row in dxs]
        )

    messy_by_reason = Counter(r.messy for r in lab_rows if r.messy)
    messy_by_reason.update(reason for reason, _ in broken_patients)
    messy_by_reason.update(reason for reason, _ in meds if reason)
    messy_by_reason.update(reason for reason, _ in dxs if reason)
    messy_by_file = Counter(r.file for r in lab_rows if r.messy)
    messy_by_file["patients.csv"] = len(broken_patients)
    messy_by_file["medications.csv"] = sum(1 for reason, _ in meds if reason)
    messy_by_file["diagnoses.csv"] = sum(1 for reason, _ in dxs if reason)
    truth = DemoTruth(
        extracts_dir=out_dir,
        truth_dir=truth_dir,
        as_of=as_of,
        seed=seed,
        n_patients=n_patients,
        n_lab_rows=len(lab_rows),
        expected_flags=expected,
        planted=planted,
        messy_rows=messy_by_reason.total(),
        messy_by_reason=dict(sorted(messy_by_reason.items())),
        messy_by_file=dict(sorted(messy_by_file.items())),
        planted_purpose={pp.patient_id: pp.purpose for pp in PLANTED},
        n_medication_rows=len(meds),
        n_diagnosis_rows=len(dxs),
    )
    truth_dir.mkdir(parents=True, exist_ok=True)
    _write_truth(truth)
    log.info(
        "demo population: %d patients, %d lab, %d medication and %d diagnosis rows "
        "(%d broken), %d expected flags",
        n_patients,
        len(lab_rows),
        len(meds),
        len(dxs),
        truth.messy_rows,
        len(expected),
    )
    return truth
