-- Staging: lab results, typed, coded and in canonical units.
-- Grain: one row per row read from the labs extracts.
-- The analyte comes from the LOINC code (rules file) and, when the code is missing or unknown,
-- from the test name (data/lab_test_names.csv). Units convert with data/lab_units.csv; a unit
-- with no conversion for its analyte leaves value_canonical NULL and the schema quarantines the
-- row. What the lab reported (value, unit) is kept beside the canonical value. A value outside
-- the analyte's plausible range (rules file) names its analyte in implausible_analyte, and the
-- schema quarantines the row with a reason naming it.
-- record_key says which rows are the same result: the source's result_id (per patient) when it
-- has one, else the patient, test, time, value and unit as reported; it is stored as the
-- 128-bit MD5 of that text (a fixed 16 bytes however long the ids are). A re-sent result has the
-- same key and is stored once; a corrected one (same result_id, new value) replaces it.
--
-- How it is computed: a row's coding (analyte, unit key, conversion factor, canonical unit)
-- depends only on its code, test name and unit as written, and is worked out once per distinct
-- spelling by stg_lab_codings.sql into staged_lab_codings (run just before this); a row keeps
-- the coding's id (coding_id, a key into the kept dictionary lab_codings) and, for validation,
-- its analyte. The censoring mark and number of a value depend only on the value as written
-- and are read once per distinct value. Each is joined to the rows once, instead of running
-- the string functions and look-ups on every row. The source is not materialised: each use
-- reads only the columns it needs.
with source as not materialized (
    select * from raw_labs
),

-- every reported value as written, read once
values_read as (
    select
        value_text,
        value_censor(value_text) as censor,
        value_number(value_text) as value_number
    from (select distinct value::varchar as value_text from source)
),

typed as (
    select
        source._rid,
        source.source_file,
        source.row_number,
        nullif(trim(source.patient_id::varchar), '') as patient_id,
        iso_timestamp(source.collected_at) as collected_at,
        codings.coding_id,
        codings.loinc,
        codings.test_name,
        source.value::varchar as value_reported,
        source.unit::varchar as unit_reported,
        values_read.censor,
        values_read.value_number,
        nullif(trim(source.result_id::varchar), '') as result_id,
        finite_or_null(try_cast(source.reference_low as double)) as reference_low,
        finite_or_null(try_cast(source.reference_high as double)) as reference_high,
        codings.analyte,
        codings.factor_to_canonical,
        codings.plausible_low,
        codings.plausible_high
    from source
    left join staged_lab_codings as codings
        on codings.loinc_text is not distinct from source.loinc::varchar
        and codings.test_name_text is not distinct from source.test_name::varchar
        and codings.unit_text is not distinct from source.unit::varchar
    left join values_read on values_read.value_text = source.value::varchar
),

final as (
    select
        typed.* exclude (loinc, test_name, unit_reported, factor_to_canonical, plausible_low,
            plausible_high),
        round(
            typed.value_number * typed.factor_to_canonical,
            getvariable('settings.canonical_decimals')::integer
        ) as value_canonical,
        round(
            typed.reference_low * typed.factor_to_canonical,
            getvariable('settings.canonical_decimals')::integer
        ) as reference_low_canonical,
        round(
            typed.reference_high * typed.factor_to_canonical,
            getvariable('settings.canonical_decimals')::integer
        ) as reference_high_canonical,
        -- the analyte, when the value is outside what is physiologically possible for it (a
        -- negative value has a reason of its own)
        case
            when typed.value_number >= 0 and (
                typed.value_number * typed.factor_to_canonical < typed.plausible_low
                or typed.value_number * typed.factor_to_canonical > typed.plausible_high
            ) then typed.analyte
        end as implausible_analyte,
        known_patients.patient_id is not null as is_known_patient,
        -- (a CASE, not coalesce(): DuckDB evaluates every argument of coalesce on every row,
        -- and the row key's two hashes would cost most of the staging for sources with ids)
        case
            when typed.patient_id is not null and typed.result_id is not null
                then md5_number('id:' || typed.patient_id || '|' || typed.result_id)
            else md5_number('row:' || md5(concat_ws('|', typed.patient_id,
                coalesce(typed.loinc, ''), coalesce(text_key(typed.test_name), ''),
                typed.collected_at::varchar, trim(typed.value_reported),
                coalesce(trim(typed.unit_reported), ''))))
        end as record_key
    from typed
    left join patients as known_patients on known_patients.patient_id = typed.patient_id
)

select * from final
