"""Synthetic screening population with planted cases and an answer key.

The generator is being split by concern into the modules of this package; until that is
done, this re-exports what the CLI and the tests use.
"""

from pipeline.demo.generate import (
    generate_population,
)
from pipeline.demo.guidance import (
    ALL_CRITERIA,
    CONDITION_CODES,
    LOOKBACK_DAYS,
    MED_CRITERIA,
    MED_RULES,
    ROLES,
    THRESHOLDS,
)
from pipeline.demo.oracle import (
    CleanResult,
    Diagnosis,
    MedOrder,
    PatientInfo,
    age_on,
    oracle_lab_flags,
    patient_criteria,
)
from pipeline.demo.planted import (
    PLANTED,
    _years_before,
    planted_oracle_input,
)
from pipeline.demo.truth import (
    DemoTruth,
)
from pipeline.demo.vocabulary import (
    _CODE_ONLY,
    _DIAGNOSES,
    DRUGS,
    SITES,
    _with_dot,
)

__all__ = [
    "ALL_CRITERIA",
    "CONDITION_CODES",
    "CleanResult",
    "DRUGS",
    "DemoTruth",
    "Diagnosis",
    "LOOKBACK_DAYS",
    "MED_CRITERIA",
    "MED_RULES",
    "MedOrder",
    "PLANTED",
    "PatientInfo",
    "ROLES",
    "SITES",
    "THRESHOLDS",
    "_CODE_ONLY",
    "_DIAGNOSES",
    "_with_dot",
    "_years_before",
    "age_on",
    "generate_population",
    "oracle_lab_flags",
    "patient_criteria",
    "planted_oracle_input",
]
