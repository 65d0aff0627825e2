"""The answer key: `DemoTruth`, what a correct screening run over the generated extracts must
produce. `generate_population` returns it and writes it to the truth folder (expected_flags.csv,
planted.csv, messy.csv), never inside the extracts folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path


@dataclass
class DemoTruth:
    """What a correct screening run over the generated extracts must produce.

    expected_flags: (patient_id, criterion) for all 26 criteria over all patients.
    planted: planted patient id -> its hand-written criteria (empty set: never flagged).
    messy_rows: rows written broken on purpose (all kinds); each must be quarantined.
    messy_by_reason / messy_by_file: the same rows by the generator's category and by file.
    """

    extracts_dir: Path
    truth_dir: Path
    as_of: date
    seed: int
    n_patients: int
    n_lab_rows: int
    expected_flags: set[tuple[str, str]]
    planted: dict[str, set[str]]
    messy_rows: int
    messy_by_reason: dict[str, int]
    messy_by_file: dict[str, int] = field(default_factory=dict)
    all_missing_patient: str = "PLANT-NOLABS-01"
    planted_purpose: dict[str, str] = field(default_factory=dict)
    n_medication_rows: int = 0
    n_diagnosis_rows: int = 0
