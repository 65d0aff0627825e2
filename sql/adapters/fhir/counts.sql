-- FHIR adapter: what each mapping recognised and what was left out, for the audit and run.json.
-- Grain: one row per kind and item (counts only, never a value or an id).
with resources as (
    select resource_type, resource from fhir_resources
),

statuses as (
    select
        resource_type,
        json_extract_string(resource, '$.status') as status,
        json_extract_string(resource, '$.verificationStatus.coding[0].code') as verification,
        flatten(list_transform(
            json_transform(resource, '{"category": [{"coding": [{"code": "VARCHAR"}]}]}').category,
            lambda c: list_transform(c.coding, lambda x: x.code)
        )) as categories
    from resources
),

medication_periods as (
    select
        case
            when json_extract_string(resource, '$.dosageInstruction[0].timing.repeat.boundsPeriod.start') is not null
                or json_extract_string(resource, '$.effectivePeriod.start') is not null
                then case
                    when coalesce(json_extract_string(resource, '$.dosageInstruction[0].timing.repeat.boundsPeriod.end'),
                        json_extract_string(resource, '$.effectivePeriod.end')) is null
                        then 'orders ongoing by their period (no end: open-ended)'
                    else 'orders dated by their period (boundsPeriod, effectivePeriod)'
                end
            when json_extract_string(resource, '$.dispenseRequest.validityPeriod.start') is not null
                or json_extract_string(resource, '$.dispenseRequest.validityPeriod.end') is not null
                then 'orders dated by dispenseRequest.validityPeriod'
            when try_cast(json_extract_string(resource, '$.dispenseRequest.expectedSupplyDuration.value') as double) > 0
                and lower(coalesce(json_extract_string(resource, '$.dispenseRequest.expectedSupplyDuration.code'),
                    json_extract_string(resource, '$.dispenseRequest.expectedSupplyDuration.unit'))) in ('d', 'day', 'days', 'wk', 'week', 'weeks')
                then 'orders dated by expectedSupplyDuration x (1 + repeats)'
            else 'orders with a start only, counted for settings.open_order_days'
        end as item
    from resources
    where resource_type in ('MedicationRequest', 'MedicationStatement')
        and coalesce(json_extract_string(resource, '$.status'), '') not in ('entered-in-error', 'cancelled', 'draft', 'not-taken')
),

final as (
    select
        case resource_type
            when 'Patient' then 'patients' when 'Observation' then 'labs'
            when 'Condition' then 'diagnoses' when 'Medication' then 'medications'
            when 'MedicationRequest' then 'medications' when 'MedicationStatement' then 'medications'
            else 'other'
        end as kind,
        case
            when resource_type = 'Observation' and coalesce(status, '') in ('entered-in-error', 'cancelled')
                then 'left out: Observation ' || status
            when resource_type = 'Observation' and not list_contains(coalesce(categories, []), 'laboratory')
                then 'left out: Observation not in the laboratory category'
            when resource_type in ('MedicationRequest', 'MedicationStatement')
                and coalesce(status, '') in ('entered-in-error', 'cancelled', 'draft', 'not-taken')
                then 'left out: ' || resource_type || ' ' || status
            when resource_type = 'Condition' and coalesce(verification, '') in ('entered-in-error', 'refuted')
                then 'left out: Condition ' || verification
            when resource_type = 'Medication' then 'Medication resources (looked up by reference)'
            when resource_type not in ('Patient', 'Observation', 'Condition', 'MedicationRequest', 'MedicationStatement')
                then 'left out: ' || coalesce(resource_type, 'no resourceType') || ' resources (not read)'
            else resource_type || ' resources read'
        end as item,
        count(*) as n
    from statuses
    group by all
    union all
    select 'medications', item, count(*) from medication_periods group by all
    union all
    select 'labs', 'Observations coded by LOINC', count(*) from raw_labs where loinc is not null
    union all
    select 'diagnoses', 'Conditions coded by ' || coalesce(code_system, 'another system'), count(*)
    from raw_diagnoses group by all
    union all
    select 'patients', 'Patients with deceasedDateTime', count(*) from raw_patients where death_date is not null
)

select kind, item, n from final order by kind, item
