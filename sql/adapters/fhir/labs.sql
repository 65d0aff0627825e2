-- FHIR adapter: laboratory Observations as the canonical labs (docs/inputs.md, "FHIR R4").
-- Grain: one row per Observation in the laboratory category that is not entered-in-error or
-- cancelled (those are left out and counted by counts.sql).
-- value: valueQuantity.comparator and value as written ('<' and '150' read '<150'), else
-- valueString; unit: valueQuantity.unit, else its UCUM code; time: effectiveDateTime, else
-- effectivePeriod.start, on the source's own clock (local_datetime); result_id: the resource id.
with source as (
    select _file_id, source_file, row_number, resource
    from fhir_resources
    where resource_type = 'Observation'
),

parsed as (
    select
        _file_id,
        source_file,
        row_number,
        json_transform(resource, '{
            "id": "VARCHAR",
            "status": "VARCHAR",
            "category": [{"coding": [{"system": "VARCHAR", "code": "VARCHAR"}]}],
            "code": {"coding": [{"system": "VARCHAR", "code": "VARCHAR", "display": "VARCHAR"}], "text": "VARCHAR"},
            "subject": {"reference": "VARCHAR"},
            "effectiveDateTime": "VARCHAR",
            "effectivePeriod": {"start": "VARCHAR"},
            "valueQuantity": {"value": "VARCHAR", "comparator": "VARCHAR", "unit": "VARCHAR", "code": "VARCHAR"},
            "valueString": "VARCHAR",
            "referenceRange": [{"low": {"value": "VARCHAR"}, "high": {"value": "VARCHAR"}}]
        }') as r
    from source
),

laboratory as (
    select *
    from parsed
    where coalesce(r.status, '') not in ('entered-in-error', 'cancelled')
        and list_contains(flatten(list_transform(r.category, lambda c: list_transform(c.coding, lambda x: x.code))), 'laboratory')
),

final as (
    select
        _file_id,
        source_file,
        row_number,
        fhir_patient_id(r.subject.reference) as patient_id,
        local_datetime(first_text(r.effectiveDateTime, r.effectivePeriod.start)) as collected_at,
        fhir_code(r.code.coding, ['http://loinc.org']) as loinc,
        first_text(r.code.text, r.code.coding[1].display) as test_name,
        case
            when nullif(trim(r.valueQuantity.value), '') is not null
                then coalesce(trim(r.valueQuantity.comparator), '') || trim(r.valueQuantity.value)
            else r.valueString
        end as value,
        first_text(r.valueQuantity.unit, r.valueQuantity.code) as unit,
        r.id as result_id,
        r.referenceRange[1].low.value as reference_low,
        r.referenceRange[1].high.value as reference_high
    from laboratory
)

select * from final
