-- Staging: patients, typed. Grain: one row per row read from the patients extracts.
-- Duplicate patient_ids are quarantined by schemas/extracts.py (the first occurrence stays).
-- record_key is (the 128-bit MD5 of) the patient_id: a patient sent again replaces the stored row.
-- death_date after the as-of date is kept: the patient was alive on the as-of date (a backfill).
-- identifiers: the site's own identifier columns ([identifiers] of the rules file) as a map of
-- name to text, carried to the clinician worklists only (pipeline.read.ingest.carry_identifiers).
with source as (
    select * from raw_patients_carried
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
        iso_timestamp(death_date)::date as death_date,
        nullif(trim(death_date::varchar), '') is not null as has_death_date_text,
        _identifiers as identifiers,
        md5_number(nullif(trim(patient_id::varchar), '')) as record_key
    from source
)

select * from final
