-- Intermediate: conditions recorded for each patient (data/diagnosis_codes.csv for ICD-10,
-- data/diagnosis_codes_snomed.csv for SNOMED CT, as OMOP, FHIR and Synthea sources code them).
-- Grain: one row per patient and condition. A listed ICD-10 code matches itself and every code
-- below it, compared without dots and in upper case (K50 matches K50.90; N18.3 matches
-- N18.32). A listed SNOMED CT code matches that concept exactly (no hierarchy is shipped).
-- reads: diagnoses, ref_diagnosis_codes, ref_diagnosis_codes_snomed
with diagnoses as (
    select patient_id, code, code_key, coalesce(code_system, 'icd10') as code_system, recorded_at
    from diagnoses
    where recorded_at <= getvariable('run.as_of')::date
),

condition_codes as (
    select condition, upper(replace(code, '.', '')) as prefix from ref_diagnosis_codes
),

snomed_codes as (
    select condition, code from ref_diagnosis_codes_snomed
),

matched as (
    select diagnoses.patient_id, condition_codes.condition, diagnoses.code, diagnoses.recorded_at
    from diagnoses
    inner join condition_codes on starts_with(diagnoses.code_key, condition_codes.prefix)
    where diagnoses.code_system = 'icd10'
    union all
    select diagnoses.patient_id, snomed_codes.condition, diagnoses.code, diagnoses.recorded_at
    from diagnoses
    inner join snomed_codes on snomed_codes.code = diagnoses.code_key
    where diagnoses.code_system = 'snomed'
),

final as (
    select
        patient_id,
        condition,
        min(recorded_at) as first_recorded_at,
        arg_min(code, recorded_at) as first_code
    from matched
    group by patient_id, condition
)

select * from final
