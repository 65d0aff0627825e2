-- FHIR adapter: resources of the types no adapter reads, and the Medication look-ups, for
-- run.json (counts only). What each kind's adapter left out or recognised is counted by the
-- reader from its _left_out and _note columns.
-- Grain: one row per resource type.
select
    case when resource_type = 'Medication' then 'medications' else 'other' end as kind,
    case
        when resource_type = 'Medication' then 'Medication resources (looked up by reference)'
        else 'left out: ' || coalesce(resource_type, 'no resourceType') || ' resources (not read)'
    end as item,
    count(*) as n
from fhir_resources
where resource_type is null
    or resource_type not in ('Patient', 'Observation', 'Condition', 'MedicationRequest', 'MedicationStatement')
group by all
order by kind, item
