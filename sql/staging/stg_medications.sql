-- Staging: medication orders, typed. Grain: one row per row read from the medications extracts.
-- record_key: an order is the same order when every field is the same (the extracts carry no
-- order id), so a re-sent order is stored once; an order sent again with an end date added is a
-- second order.
with source as (
    select * from raw_medications
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
        nullif(trim(medication::varchar), '') as medication,
        nullif(trim(rxnorm::varchar), '') as rxnorm,
        nullif(upper(trim(atc::varchar)), '') as atc,
        iso_timestamp(start_date)::date as start_date,
        iso_timestamp(end_date)::date as end_date,
        nullif(trim(end_date::varchar), '') is not null as has_end_date_text,
        nullif(trim(route::varchar), '') as route
    from source
),

final as (
    select
        typed.*,
        known_patients.patient_id is not null as is_known_patient,
        md5_number(md5(concat_ws('|', typed.patient_id, coalesce(typed.medication, ''),
            coalesce(typed.rxnorm, ''), coalesce(typed.atc, ''), typed.start_date::varchar,
            coalesce(typed.end_date::varchar, ''), coalesce(typed.route, '')))) as record_key
    from typed
    left join known_patients on known_patients.patient_id = typed.patient_id
)

select * from final
