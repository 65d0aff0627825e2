-- Intermediate: conditions recorded for each patient (data/diagnosis_codes.csv).
-- Grain: one row per patient and condition. A listed code matches itself and every code below
-- it, compared without dots and in upper case (K50 matches K50.90; N18.3 matches N18.32).
-- reads: diagnoses, ref_diagnosis_codes
with diagnoses as (
    select patient_id, code, code_key, recorded_at
    from diagnoses
    where recorded_at <= getvariable('run.as_of')::date
),

condition_codes as (
    select condition, upper(replace(code, '.', '')) as prefix from ref_diagnosis_codes
),

final as (
    select
        diagnoses.patient_id,
        condition_codes.condition,
        min(diagnoses.recorded_at) as first_recorded_at,
        arg_min(diagnoses.code, diagnoses.recorded_at) as first_code
    from diagnoses
    inner join condition_codes on starts_with(diagnoses.code_key, condition_codes.prefix)
    group by diagnoses.patient_id, condition_codes.condition
)

select * from final
