"""The demo population written out as OMOP CDM, FHIR R4 NDJSON or Synthea CSV.

For the round-trip test (tests/acceptance/test_formats_e2e.py) and ``b12screen demo
--format``: the canonical extracts folder the generator wrote is rewritten, cell for cell, in
another data model. Text is carried over as written (a value '<150', a date '2024-13-45'), so
the deliberately broken rows stay broken the same way. What a format cannot carry is listed in
``CANNOT_CARRY``: the round trip compares against a canonical run of the same folder with those
columns emptied (``blank_columns``), never against the adapter's own idea of the answer.

Written with DuckDB SQL (COPY ... TO), not a loop over rows.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipeline.sqltext import ident, literal

# canonical kind -> columns the format has no place for
CANNOT_CARRY: dict[str, dict[str, tuple[str, ...]]] = {
    "omop": {},
    "fhir": {},
    "synthea": {
        "patients": ("site",),
        "labs": ("result_id", "reference_low", "reference_high"),
        "medications": ("atc", "route"),
    },
}
COLUMNS = {
    "patients": ("patient_id", "sex", "birth_date", "site", "death_date"),
    "labs": (
        "patient_id",
        "collected_at",
        "loinc",
        "test_name",
        "value",
        "unit",
        "result_id",
        "reference_low",
        "reference_high",
    ),
    "medications": ("patient_id", "medication", "rxnorm", "atc", "start_date", "end_date", "route"),
    "diagnoses": ("patient_id", "code", "recorded_at", "description"),
}
_NUMBER = r"-?(0|[1-9]\d*)(\.\d+)?"  # a JSON number, and the value_as_number OMOP is sure of


def _load_canonical(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    """``c_<kind>``: every canonical file of a kind, columns lower-cased, in file order, with
    ``n`` numbering the rows from 1."""
    for kind, wanted in COLUMNS.items():
        parts = []
        for path in sorted(folder.iterdir()):
            if not path.name.lower().startswith(kind):
                continue
            lit = literal(path.as_posix())
            reader = (
                f"read_parquet({lit})"
                if path.suffix == ".parquet"
                else f"read_csv({lit}, all_varchar = true, header = true)"
            )
            have = {
                r[0].lower(): r[0]
                for r in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
            }
            select = ", ".join(
                f"{ident(have[c])}::VARCHAR AS {c}" if c in have else f"NULL::VARCHAR AS {c}"
                for c in wanted
            )
            parts.append(f"SELECT {select} FROM {reader}")
        body = " UNION ALL ".join(parts) or (
            "SELECT " + ", ".join(f"NULL::VARCHAR AS {c}" for c in wanted) + " WHERE false"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE c_{kind} AS SELECT row_number() OVER () AS n, * FROM ({body})"
        )


def blank_columns(folder: Path, fmt: str, out: Path) -> Path:
    """A canonical copy of ``folder`` in ``out`` with the columns ``fmt`` cannot carry emptied."""
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    _load_canonical(con, folder)
    for kind, wanted in COLUMNS.items():
        blank = CANNOT_CARRY[fmt].get(kind, ())
        select = ", ".join(f"NULL::VARCHAR AS {c}" if c in blank else c for c in wanted)
        con.execute(
            f"COPY (SELECT {select} FROM c_{kind} ORDER BY n) TO "
            f"{literal((out / f'{kind}.csv').as_posix())} (HEADER, DELIMITER ',')"
        )
    con.close()
    return out


def write_format(folder: Path, fmt: str, out: Path) -> Path:
    """Rewrite the canonical extracts in ``folder`` as ``fmt`` (omop, fhir, synthea) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    _load_canonical(con, folder)
    {"omop": _omop, "fhir": _fhir, "synthea": _synthea}[fmt](con, out)
    con.close()
    return out


def _copy(con: duckdb.DuckDBPyConnection, sql: str, path: Path, json: bool = False) -> None:
    options = "(FORMAT json)" if json else "(HEADER, DELIMITER ',')"
    con.execute(f"COPY ({sql}) TO {literal(path.as_posix())} {options}")


def _fhir(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    _copy(
        con,
        """SELECT 'Patient' AS resourceType, patient_id AS id, sex AS gender,
                  birth_date AS birthDate, death_date AS deceasedDateTime,
                  CASE WHEN site IS NOT NULL THEN {'display': site} END AS managingOrganization
           FROM c_patients ORDER BY n""",
        out / "Patient.ndjson",
        json=True,
    )
    _copy(
        con,
        f"""
        WITH v AS (
            SELECT *,
                regexp_extract(trim(value), '^(<=|>=|<|>)?({_NUMBER})$', 1) AS comparator,
                regexp_extract(trim(value), '^(<=|>=|<|>)?({_NUMBER})$', 2) AS number
            FROM c_labs
        )
        SELECT 'Observation' AS resourceType, result_id AS id, 'final' AS status,
            [{{'coding': [{{'system': 'http://terminology.hl7.org/CodeSystem/observation-category',
                'code': 'laboratory'}}]}}] AS category,
            {{'coding': CASE WHEN loinc IS NOT NULL
                THEN [{{'system': 'http://loinc.org', 'code': loinc}}] ELSE [] END,
              'text': test_name}} AS code,
            {{'reference': 'Patient/' || patient_id}} AS subject,
            collected_at AS effectiveDateTime,
            {{'value': CASE WHEN number <> '' THEN number::JSON END,
              'comparator': nullif(comparator, ''), 'unit': unit}} AS valueQuantity,
            CASE WHEN coalesce(number, '') = '' THEN value END AS valueString,
            CASE WHEN reference_low IS NOT NULL OR reference_high IS NOT NULL THEN
                [{{'low': {{'value': reference_low}}, 'high': {{'value': reference_high}}}}] END
                AS referenceRange
        FROM v ORDER BY n""",
        out / "Observation.ndjson",
        json=True,
    )
    # the drug: every third order names it through a contained Medication, every fifth through
    # a Medication resource of its own (Medication.ndjson), the others in the order itself
    con.execute(
        """
        CREATE TEMP TABLE fhir_drug AS
        SELECT n, {'coding': list_concat(
                CASE WHEN rxnorm IS NOT NULL THEN [{'system': 'http://www.nlm.nih.gov/research/umls/rxnorm', 'code': rxnorm}] ELSE [] END,
                CASE WHEN atc IS NOT NULL THEN [{'system': 'http://www.whocc.no/atc', 'code': atc}] ELSE [] END),
              'text': medication} AS drug,
            CASE WHEN n % 3 = 0 THEN 'contained' WHEN n % 5 = 0 THEN 'referenced' ELSE 'inline' END AS how
        FROM c_medications
        """
    )
    _copy(
        con,
        """SELECT 'Medication' AS resourceType, 'med-' || n AS id, drug AS code
           FROM fhir_drug WHERE how = 'referenced' ORDER BY n""",
        out / "Medication.ndjson",
        json=True,
    )
    _copy(
        con,
        """
        SELECT 'MedicationRequest' AS resourceType, 'mr-' || m.n AS id, 'active' AS status,
            'order' AS intent,
            CASE WHEN how = 'inline' THEN drug END AS medicationCodeableConcept,
            CASE how WHEN 'contained' THEN {'reference': '#m1'}
                WHEN 'referenced' THEN {'reference': 'Medication/med-' || m.n} END AS medicationReference,
            CASE WHEN how = 'contained' THEN [{'resourceType': 'Medication', 'id': 'm1', 'code': drug}] END
                AS contained,
            {'reference': 'urn:uuid:' || patient_id} AS subject,
            start_date AS authoredOn,
            [{'route': {'text': route},
              'timing': {'repeat': {'boundsPeriod': {'start': start_date, 'end': end_date}}}}]
                AS dosageInstruction
        FROM c_medications AS m JOIN fhir_drug USING (n) ORDER BY m.n""",
        out / "MedicationRequest.ndjson",
        json=True,
    )
    _copy(
        con,
        """SELECT 'Condition' AS resourceType, 'cond-' || n AS id,
              {'coding': [{'system': 'http://hl7.org/fhir/sid/icd-10-cm', 'code': code}],
               'text': description} AS code,
              {'reference': 'Patient/' || patient_id} AS subject,
              recorded_at AS recordedDate
           FROM c_diagnoses ORDER BY n""",
        out / "Condition.ndjson",
        json=True,
    )


def _omop(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    con.execute(
        """
        CREATE TEMP TABLE codes AS
        SELECT DISTINCT 'LOINC' AS vocabulary_id, 'Measurement' AS domain_id, loinc AS concept_code FROM c_labs WHERE loinc IS NOT NULL
        UNION SELECT DISTINCT 'RxNorm', 'Drug', rxnorm FROM c_medications WHERE rxnorm IS NOT NULL
        UNION SELECT DISTINCT 'ATC', 'Drug', atc FROM c_medications WHERE atc IS NOT NULL
        UNION SELECT DISTINCT 'ICD10CM', 'Condition', code FROM c_diagnoses WHERE code IS NOT NULL;
        CREATE TEMP TABLE concept AS
        SELECT (2000000000 + row_number() OVER (ORDER BY vocabulary_id, concept_code))::VARCHAR AS concept_id,
            vocabulary_id || ' ' || concept_code AS concept_name, domain_id, vocabulary_id,
            'demo' AS concept_class_id, '' AS standard_concept, concept_code,
            '1970-01-01' AS valid_start_date, '2099-12-31' AS valid_end_date, '' AS invalid_reason
        FROM codes;
        CREATE TEMP TABLE sites AS
        SELECT (row_number() OVER (ORDER BY site))::VARCHAR AS care_site_id, site AS care_site_name
        FROM (SELECT DISTINCT site FROM c_patients WHERE site IS NOT NULL);
        """
    )
    _copy(con, "SELECT * FROM concept ORDER BY concept_id", out / "CONCEPT.csv")
    _copy(con, "SELECT care_site_id, care_site_name FROM sites ORDER BY 1", out / "CARE_SITE.csv")
    _copy(
        con,
        """SELECT patient_id AS person_id,
              CASE lower(trim(sex)) WHEN 'm' THEN '8507' WHEN 'male' THEN '8507'
                  WHEN 'f' THEN '8532' WHEN 'female' THEN '8532' ELSE '0' END AS gender_concept_id,
              NULL AS year_of_birth, NULL AS month_of_birth, NULL AS day_of_birth,
              birth_date AS birth_datetime, sites.care_site_id, patient_id AS person_source_value,
              sex AS gender_source_value
           FROM c_patients LEFT JOIN sites ON sites.care_site_name = c_patients.site ORDER BY n""",
        out / "PERSON.csv",
    )
    _copy(
        con,
        """SELECT patient_id AS person_id, death_date, '32817' AS death_type_concept_id
           FROM c_patients WHERE death_date IS NOT NULL ORDER BY n""",
        out / "DEATH.csv",
    )
    _copy(
        con,
        f"""
        WITH v AS (
            SELECT *,
                regexp_extract(trim(value), '^(<=|>=|<|>)?({_NUMBER})$', 1) AS op,
                regexp_extract(trim(value), '^(<=|>=|<|>)?({_NUMBER})$', 2) AS number
            FROM c_labs
        )
        SELECT result_id AS measurement_id, patient_id AS person_id,
            coalesce(concept.concept_id, '0') AS measurement_concept_id,
            NULL AS measurement_date, collected_at AS measurement_datetime,
            CASE op WHEN '<' THEN '4171756' WHEN '<=' THEN '4171754' WHEN '>' THEN '4172704'
                WHEN '>=' THEN '4171755' ELSE CASE WHEN number <> '' THEN '4172703' END END
                AS operator_concept_id,
            nullif(number, '') AS value_as_number,
            CASE WHEN unit IS NOT NULL THEN '0' END AS unit_concept_id,
            reference_low AS range_low, reference_high AS range_high,
            test_name AS measurement_source_value, unit AS unit_source_value,
            value AS value_source_value
        FROM v LEFT JOIN concept ON concept.vocabulary_id = 'LOINC' AND concept.concept_code = v.loinc
        ORDER BY n""",
        out / "MEASUREMENT.csv",
    )
    _copy(
        con,
        """SELECT n AS drug_exposure_id, patient_id AS person_id,
              coalesce(rx.concept_id, '0') AS drug_concept_id,
              start_date AS drug_exposure_start_date, end_date AS drug_exposure_end_date,
              NULL AS days_supply, medication AS drug_source_value,
              atc_concept.concept_id AS drug_source_concept_id, route AS route_source_value
           FROM c_medications AS m
           LEFT JOIN concept AS rx ON rx.vocabulary_id = 'RxNorm' AND rx.concept_code = m.rxnorm
           LEFT JOIN concept AS atc_concept ON atc_concept.vocabulary_id = 'ATC' AND atc_concept.concept_code = m.atc
           ORDER BY n""",
        out / "DRUG_EXPOSURE.csv",
    )
    _copy(
        con,
        """SELECT n AS condition_occurrence_id, patient_id AS person_id, '0' AS condition_concept_id,
              recorded_at AS condition_start_date, code AS condition_source_value,
              icd.concept_id AS condition_source_concept_id
           FROM c_diagnoses AS d
           LEFT JOIN concept AS icd ON icd.vocabulary_id = 'ICD10CM' AND icd.concept_code = d.code
           ORDER BY n""",
        out / "CONDITION_OCCURRENCE.csv",
    )


def _synthea(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    _copy(
        con,
        """SELECT patient_id AS Id, birth_date AS BIRTHDATE, death_date AS DEATHDATE,
              NULL AS SSN, NULL AS FIRST, NULL AS LAST, sex AS GENDER
           FROM c_patients ORDER BY n""",
        out / "patients.csv",
    )
    _copy(
        con,
        """SELECT collected_at AS DATE, patient_id AS PATIENT, NULL AS ENCOUNTER,
              'laboratory' AS CATEGORY, loinc AS CODE, test_name AS DESCRIPTION, value AS VALUE,
              unit AS UNITS, 'numeric' AS TYPE
           FROM c_labs ORDER BY n""",
        out / "observations.csv",
    )
    _copy(
        con,
        """SELECT start_date AS START, end_date AS STOP, patient_id AS PATIENT, NULL AS PAYER,
              NULL AS ENCOUNTER, rxnorm AS CODE, medication AS DESCRIPTION
           FROM c_medications ORDER BY n""",
        out / "medications.csv",
    )
    _copy(
        con,
        """SELECT recorded_at AS START, NULL AS STOP, patient_id AS PATIENT, NULL AS ENCOUNTER,
              'ICD-10-CM' AS SYSTEM, code AS CODE, description AS DESCRIPTION
           FROM c_diagnoses ORDER BY n""",
        out / "conditions.csv",
    )
