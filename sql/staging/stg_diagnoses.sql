-- Staging: diagnoses, typed. Grain: one row per row read from the diagnoses extracts.
-- code_key is the ICD-10 code upper-cased without its dot ('K90.0' and 'k900' both read 'K900');
-- a SNOMED CT code (code_system 'snomed', as the OMOP, FHIR and Synthea adapters present one)
-- is kept as written, trimmed. code_system: 'icd10' unless the row says 'snomed'.
-- record_key: the same patient, code and date is the same diagnosis, stored once.
with source as (
    select * from raw_diagnoses
),

known_patients as (
    select patient_id from patients
),

typed as (
    select
        _rid,
        source_file,
        row_number,
        nullif(trim(patient_id::varchar), '') as patient_id,
        nullif(trim(code::varchar), '') as code,
        case
            when lower(trim(code_system::varchar)) = 'snomed' then 'snomed'
            else 'icd10'
        end as code_system,
        case
            when lower(trim(code_system::varchar)) = 'snomed' then nullif(trim(code::varchar), '')
            else nullif(upper(replace(trim(code::varchar), '.', '')), '')
        end as code_key,
        iso_timestamp(recorded_at)::date as recorded_at,
        nullif(trim(description::varchar), '') as description
    from source
),

final as (
    select
        typed.*,
        known_patients.patient_id is not null as is_known_patient,
        md5_number(md5(concat_ws('|', typed.patient_id,
            coalesce(case when typed.code_system = 'snomed' then 'sct:' end, '') || coalesce(typed.code_key, ''),
            typed.recorded_at::varchar))) as record_key
    from typed
    left join known_patients on known_patients.patient_id = typed.patient_id
)

select * from final
