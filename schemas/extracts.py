"""Pandera schemas: what a valid row of each extract is (docs/inputs.md).

Each schema checks the *staged* frame of its kind: the columns after sql/staging has typed
them (a value that could not be read is NULL there), so a check failing here means the row
breaks the input rules. Validation is lazy (every failure of every row is collected); failing
rows go to quarantine with one reason per failed check, never dropped.

Checks that need the run's as-of date are added by :func:`schema_for`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import date

import pandera.polars as pa
import polars as pl
from pandera.typing.polars import Series


def _read_if_given(column: str) -> pl.Expr:
    """True where ``column`` had no text in the extract or its text was read: staging sets
    ``has_<column>_text`` beside the typed column, which is NULL when the text was not a date."""
    return ~pl.col(f"has_{column}_text").fill_null(False) | pl.col(column).is_not_null()


def _not_before(later: str, earlier: str) -> pl.Expr:
    """True unless both dates are known and ``later`` lies before ``earlier``."""
    return (pl.col(later) >= pl.col(earlier)).fill_null(True)


class _Base(pa.DataFrameModel):
    rid: Series[pl.Int64] = pa.Field(nullable=False, unique=True, alias="_rid")
    patient_id: Series[pl.String] = pa.Field(nullable=False)

    class Config:
        strict = False  # the staged frames carry more columns than the rules check
        coerce = False  # the types come from sql/staging; a mismatch there is a bug


class _KnownPatient(_Base):
    is_known_patient: Series[pl.Boolean] = pa.Field(nullable=True)

    @pa.dataframe_check(name="patient_known", error="patient_id not in the patients extract")
    @classmethod
    def _patient_known(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("patient_id").is_null() | pl.col("is_known_patient").fill_null(False)
        )


class PatientRow(_Base):
    """One patient. patient_id is unique: later copies are quarantined, the first kept.

    Validated in one piece (never in batches) so that "first" is first in the whole extract.
    """

    birth_date: Series[pl.Date] = pa.Field(nullable=False)
    sex: Series[pl.String] = pa.Field(isin=["M", "F", "U"])
    is_implausibly_old: Series[pl.Boolean] = pa.Field(nullable=True)
    death_date: Series[pl.Date] = pa.Field(nullable=True)
    has_death_date_text: Series[pl.Boolean] = pa.Field(nullable=True)

    @pa.dataframe_check(name="death_date_readable", error="death_date is not a date")
    @classmethod
    def _death_date_readable(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(_read_if_given("death_date"))

    @pa.dataframe_check(name="death_after_birth", error="death_date before birth_date")
    @classmethod
    def _death_after_birth(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(_not_before("death_date", "birth_date"))

    @pa.dataframe_check(
        name="birth_date_plausible",
        error="birth_date: older than the plausible maximum age (settings.max_age_years)",
    )
    @classmethod
    def _birth_date_plausible(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(~pl.col("is_implausibly_old").fill_null(False))

    @pa.dataframe_check(
        name="patient_id_unique", error="duplicate patient_id (its first row is kept)"
    )
    @classmethod
    def _first_of_each_id(cls, data: pa.PolarsData) -> pl.LazyFrame:
        # The frame comes ordered by _rid (file order); polars' unique check would report
        # every copy, and the first one is kept.
        return data.lazyframe.select(
            pl.col("patient_id").is_null() | pl.col("patient_id").is_first_distinct()
        )


class LabRow(_KnownPatient):
    """One lab result. Rows of tests the rules do not use (no analyte) are kept unscreened."""

    collected_at: Series[pl.Datetime] = pa.Field(nullable=False)
    analyte: Series[pl.String] = pa.Field(nullable=True)
    value_number: Series[pl.Float64] = pa.Field(nullable=True)
    value_canonical: Series[pl.Float64] = pa.Field(nullable=True)
    implausible_analyte: Series[pl.String] = pa.Field(nullable=True)

    @pa.dataframe_check(name="value_readable", error="value is not a number")
    @classmethod
    def _value_readable(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("analyte").is_null() | pl.col("value_number").is_not_null()
        )

    @pa.dataframe_check(name="value_not_negative", error="negative value")
    @classmethod
    def _value_not_negative(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("analyte").is_null() | (pl.col("value_number") >= 0).fill_null(True)
        )

    @pa.dataframe_check(name="unit_fits_analyte", error="unit does not fit the analyte")
    @classmethod
    def _unit_fits(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("analyte").is_null()
            | pl.col("value_number").is_null()
            | pl.col("value_canonical").is_not_null()
        )


class MedicationRow(_KnownPatient):
    start_date: Series[pl.Date] = pa.Field(nullable=False)
    end_date: Series[pl.Date] = pa.Field(nullable=True)
    has_end_date_text: Series[pl.Boolean] = pa.Field(nullable=True)

    @pa.dataframe_check(name="end_date_readable", error="end_date is not a date")
    @classmethod
    def _end_date_readable(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(_read_if_given("end_date"))

    @pa.dataframe_check(name="end_after_start", error="end_date before start_date")
    @classmethod
    def _end_after_start(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(_not_before("end_date", "start_date"))

    @pa.dataframe_check(name="drug_named", error="no medication name, RxNorm or ATC code")
    @classmethod
    def _drug_named(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.any_horizontal(pl.col(c).is_not_null() for c in ("medication", "rxnorm", "atc"))
        )


class DiagnosisRow(_KnownPatient):
    code: Series[pl.String] = pa.Field(nullable=False)
    recorded_at: Series[pl.Date] = pa.Field(nullable=False)


class FeedbackRow(_KnownPatient):
    """A clinician's feedback on one flag of one patient (feedback*.csv)."""

    criterion: Series[pl.String] = pa.Field(nullable=False)
    action: Series[pl.String] = pa.Field(isin=["reviewed", "treated", "declined", "not-applicable"])
    until: Series[pl.Date] = pa.Field(nullable=True)
    has_until_text: Series[pl.Boolean] = pa.Field(nullable=True)
    is_known_criterion: Series[pl.Boolean] = pa.Field(nullable=True)

    @pa.dataframe_check(name="criterion_known", error="criterion is not in the catalogue")
    @classmethod
    def _criterion_known(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("criterion").is_null() | pl.col("is_known_criterion").fill_null(False)
        )

    @pa.dataframe_check(name="until_readable", error="until is not a date")
    @classmethod
    def _until_readable(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(_read_if_given("until"))


MODELS: dict[str, type[pa.DataFrameModel]] = {
    "patients": PatientRow,
    "labs": LabRow,
    "medications": MedicationRow,
    "diagnoses": DiagnosisRow,
    "feedback": FeedbackRow,
}

# The date column of each kind that may not lie after the as-of date.
AS_OF_BOUNDED = {
    "patients": "birth_date",
    "labs": "collected_at",
    "medications": "start_date",
    "diagnoses": "recorded_at",
}  # feedback has no date that must lie before the as-of date


def schema_for(
    kind: str, as_of: date, analytes: Mapping[str, str] | None = None
) -> pa.DataFrameSchema:
    """The schema of ``kind`` with the as-of bound added to its date column, and for labs one
    plausibility check per analyte (``analytes``: id -> label, from the rules file), so the
    reason of a value outside an analyte's plausible range names the analyte."""
    schema = MODELS[kind].to_schema()
    if kind == "labs":  # row checks, so the reason is the check's own text
        schema = copy.deepcopy(schema)
        schema.checks = [
            *schema.checks,
            *(_plausible_check(aid, label) for aid, label in (analytes or {}).items()),
        ]
    if kind not in AS_OF_BOUNDED:
        return schema
    column = AS_OF_BOUNDED[kind]
    bound = (
        as_of
        if kind != "labs"
        else pl.datetime(as_of.year, as_of.month, as_of.day) + pl.duration(days=1)
    )

    def not_after_as_of(data: pa.PolarsData) -> pl.LazyFrame:
        col = pl.col(data.key)
        ok = (col < bound) if kind == "labs" else (col <= bound)
        return data.lazyframe.select(ok.fill_null(True))

    check = pa.Check(not_after_as_of, name="not_after_as_of", error="date after the as-of date")
    existing = list(schema.columns[column].checks)
    return schema.update_column(column, checks=[*existing, check])


def _plausible_check(analyte: str, label: str) -> pa.Check:
    def plausible(data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select((pl.col("implausible_analyte") != analyte).fill_null(True))

    return pa.Check(
        plausible,
        name=f"plausible_{analyte}",
        error=f"value outside the physiologically possible range for {label}",
    )


def validation_columns(kind: str) -> list[str]:
    """The staged columns a kind's schema reads (only these are sent to pandera)."""
    schema = MODELS[kind].to_schema()
    extra = {"medications": ["medication", "rxnorm", "atc"]}.get(kind, [])
    return [*schema.columns, *extra]
