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
with source as (
    select * from raw_labs
),

lab_codes as (
    select loinc, analyte from rule_lab_codes
),

-- Test names and units are keyed once per distinct spelling (hundreds), not once per row.
test_names as (
    select spelled.test_name, ref_lab_test_names.analyte
    from (select distinct nullif(trim(test_name::varchar), '') as test_name from source) as spelled
    inner join ref_lab_test_names on ref_lab_test_names.test_name_key = text_key(spelled.test_name)
),

unit_keys as (
    select spelled.unit_text, unit_key(spelled.unit_text) as unit_key
    from (select distinct unit::varchar as unit_text from source) as spelled
),

units as (
    select analyte, unit_key, factor_to_canonical from ref_lab_units
),

analytes as (
    select analyte, canonical_unit, plausible_low, plausible_high from rule_analytes
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
        iso_timestamp(collected_at) as collected_at,
        nullif(trim(loinc::varchar), '') as loinc,
        nullif(trim(test_name::varchar), '') as test_name,
        value::varchar as value_reported,
        unit::varchar as unit_reported,
        value_censor(value) as censor,
        value_number(value) as value_number,
        unit_keys.unit_key,
        nullif(trim(result_id::varchar), '') as result_id,
        finite_or_null(try_cast(reference_low as double)) as reference_low,
        finite_or_null(try_cast(reference_high as double)) as reference_high
    from source
    left join unit_keys on unit_keys.unit_text = source.unit::varchar
),

coded as (
    select
        typed.*,
        coalesce(lab_codes.analyte, test_names.analyte) as analyte,
        case
            when lab_codes.analyte is not null then 'loinc'
            when test_names.analyte is not null then 'test_name'
        end as coded_by
    from typed
    left join lab_codes on lab_codes.loinc = typed.loinc
    left join test_names on test_names.test_name = typed.test_name
),

final as (
    select
        coded.*,
        units.factor_to_canonical,
        round(
            coded.value_number * units.factor_to_canonical,
            getvariable('settings.canonical_decimals')::integer
        ) as value_canonical,
        round(
            coded.reference_low * units.factor_to_canonical,
            getvariable('settings.canonical_decimals')::integer
        ) as reference_low_canonical,
        round(
            coded.reference_high * units.factor_to_canonical,
            getvariable('settings.canonical_decimals')::integer
        ) as reference_high_canonical,
        analytes.canonical_unit,
        -- the analyte, when the value is outside what is physiologically possible for it (a
        -- negative value has a reason of its own)
        case
            when coded.value_number >= 0 and (
                coded.value_number * units.factor_to_canonical < analytes.plausible_low
                or coded.value_number * units.factor_to_canonical > analytes.plausible_high
            ) then coded.analyte
        end as implausible_analyte,
        known_patients.patient_id is not null as is_known_patient,
        -- (a CASE, not coalesce(): DuckDB evaluates every argument of coalesce on every row,
        -- and the row key's two hashes would cost most of the staging for sources with ids)
        case
            when coded.patient_id is not null and coded.result_id is not null
                then md5_number('id:' || coded.patient_id || '|' || coded.result_id)
            else md5_number('row:' || md5(concat_ws('|', coded.patient_id,
                coalesce(coded.loinc, ''), coalesce(text_key(coded.test_name), ''),
                coded.collected_at::varchar, trim(coded.value_reported),
                coalesce(trim(coded.unit_reported), ''))))
        end as record_key
    from coded
    left join units
        on units.analyte = coded.analyte and units.unit_key = coded.unit_key
    left join analytes on analytes.analyte = coded.analyte
    left join known_patients on known_patients.patient_id = coded.patient_id
)

select * from final
