-- Staging: clinician feedback on flags, typed. Grain: one row per row read from the feedback
-- extracts. action is one of reviewed, treated, declined, not-applicable; until (optional) is the
-- last day the feedback holds.
with source as (
    select * from raw_feedback
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
        nullif(lower(trim(criterion::varchar)), '') as criterion,
        replace(nullif(lower(trim(action::varchar)), ''), '_', '-') as action,
        iso_timestamp(until)::date as until,
        nullif(trim(until::varchar), '') is not null as has_until_text,
        nullif(trim(note::varchar), '') as note
    from source
),

final as (
    select
        typed.*,
        known_patients.patient_id is not null as is_known_patient,
        typed.criterion in (select criterion from rule_criteria) as is_known_criterion,
        md5_number(md5(concat_ws('|', typed.patient_id, typed.criterion, typed.action,
            coalesce(typed.until::varchar, ''), coalesce(typed.note, '')))) as record_key
    from typed
    left join known_patients on known_patients.patient_id = typed.patient_id
)

select * from final
