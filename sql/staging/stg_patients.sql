-- Staging: patients, typed. Grain: one row per row read from the patients extracts.
-- Duplicate patient_ids are quarantined by schemas/extracts.py (the first occurrence stays).
-- record_key is (the 128-bit MD5 of) the patient_id: a patient sent again replaces the stored row.
with source as (
    select * from raw_patients
),

final as (
    select
        _rid,
        source_file,
        row_number,
        nullif(trim(patient_id::varchar), '') as patient_id,
        sex::varchar as sex_reported,
        sex_code(sex) as sex,
        iso_timestamp(birth_date)::date as birth_date,
        -- older than anyone has lived (rules file): a birth date typed or defaulted wrongly
        iso_timestamp(birth_date)::date
            < getvariable('run.as_of')::date
                - to_years(getvariable('settings.max_age_years')::integer)
            as is_implausibly_old,
        nullif(trim(site::varchar), '') as site,
        md5_number(nullif(trim(patient_id::varchar), '')) as record_key
    from source
)

select * from final
