-- FHIR adapter: laboratory Observations as the canonical labs (docs/inputs.md, "FHIR R4").
-- Grain: one row per Observation. _left_out names why one is not presented (entered-in-error,
-- cancelled, not in the laboratory category); the reader counts those and _note (how it was
-- coded) for run.json, and presents the rest as raw_labs.
-- value: valueQuantity.comparator and value as written ('<' and '150' read '<150'), else
-- valueString; unit: valueQuantity.unit, else its UCUM code; time: effectiveDateTime, else
-- effectivePeriod.start, on the source's own clock (local_datetime); result_id: the resource id.
with parsed as (
    -- r: the Observation read with sql/adapters/fhir/structures/observation.json
    select _file_id, source_file, row_number, r
    from fhir_observation
    where resource_type = 'Observation'
),

judged as (
    select
        *,
        case
            when r.status in ('entered-in-error', 'cancelled') then 'Observation ' || r.status
            when not coalesce(list_contains(flatten(list_transform(r.category,
                lambda c: list_transform(c.coding, lambda x: x.code))), 'laboratory'), false)
                then 'Observation not in the laboratory category'
        end as _left_out,
        fhir_code(r.code.coding, ['http://loinc.org']) as loinc
    from parsed
),

final as (
    select
        _file_id,
        source_file,
        row_number,
        fhir_patient_id(r.subject.reference) as patient_id,
        local_datetime(first_text(r.effectiveDateTime, r.effectivePeriod.start)) as collected_at,
        loinc,
        first_text(r.code.text, r.code.coding[1].display) as test_name,
        case
            when nullif(trim(r.valueQuantity.value), '') is not null
                then coalesce(trim(r.valueQuantity.comparator), '') || trim(r.valueQuantity.value)
            else r.valueString
        end as value,
        first_text(r.valueQuantity.unit, r.valueQuantity.code) as unit,
        r.id as result_id,
        r.referenceRange[1].low.value as reference_low,
        r.referenceRange[1].high.value as reference_high,
        _left_out,
        case
            when loinc is not null
                then 'Observations coded by LOINC'
            else 'Observations without a LOINC code (test name only)'
        end as _note
    from judged
)

select * from final
