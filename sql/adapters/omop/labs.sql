-- OMOP adapter: MEASUREMENT as the canonical labs (docs/inputs.md, "OMOP CDM").
-- Grain: one row per MEASUREMENT row, with its file and row.
-- loinc: the CONCEPT code of measurement_concept_id when its vocabulary is LOINC, else of
-- measurement_source_concept_id, else measurement_source_value when it is shaped like a LOINC
-- code ('718-7'). test_name: measurement_source_value when it is not such a code, else the
-- concept's name. value: operator_concept_id's sign (the OMOP Meas Value Operator concepts
-- 4171756 '<', 4171754 '<=', 4172703 '=', 4171755 '>=', 4172704 '>') before value_as_number,
-- as written; no number: value_source_value. unit: unit_source_value, else the unit concept's
-- code (UCUM) when unit_concept_id is a concept: 0 is "no matching concept" and NULL "no unit",
-- and both leave the unit missing (counted apart in counts.sql). result_id: measurement_id.
with measurement as (
    select * from src_measurement
),

concept as (
    select * from omop_concept
),

operators as (
    select * from (values ('4171756', '<'), ('4171754', '<='), ('4172703', ''),
        ('4171755', '>='), ('4172704', '>')) as o (concept_id, sign)
),

coded as (
    select
        measurement.*,
        case
            when measured.vocabulary_id = 'LOINC' then measured.concept_code
            when source_concept.vocabulary_id = 'LOINC' then source_concept.concept_code
            when regexp_full_match(trim(measurement.measurement_source_value), '\d{1,7}-\d')
                then trim(measurement.measurement_source_value)
        end as loinc_code,
        measured.concept_name as measured_name,
        unit_concept.concept_code as unit_concept_code,
        operators.sign
    from measurement
    left join concept as measured on measured.concept_id = measurement.measurement_concept_id
    left join concept as source_concept
        on source_concept.concept_id = measurement.measurement_source_concept_id
    left join concept as unit_concept
        on unit_concept.concept_id = measurement.unit_concept_id
        and trim(measurement.unit_concept_id) <> '0'
    left join operators on operators.concept_id = trim(measurement.operator_concept_id)
),

final as (
    select
        _file_id,
        source_file,
        row_number,
        person_id as patient_id,
        first_text(measurement_datetime, measurement_date) as collected_at,
        loinc_code as loinc,
        case
            when regexp_full_match(trim(measurement_source_value), '\d{1,7}-\d') then measured_name
            else first_text(measurement_source_value, measured_name)
        end as test_name,
        case
            when nullif(trim(value_as_number), '') is not null
                then coalesce(sign, '') || trim(value_as_number)
            else value_source_value
        end as value,
        first_text(unit_source_value, unit_concept_code) as unit,
        measurement_id as result_id,
        range_low as reference_low,
        range_high as reference_high
    from coded
)

select * from final
