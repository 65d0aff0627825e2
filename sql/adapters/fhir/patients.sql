-- FHIR adapter: Patient resources as the canonical patients (docs/inputs.md, "FHIR R4").
-- Grain: one row per Patient resource (an NDJSON line or a Bundle entry), with its file and
-- line. The JSON is read with an explicit structure (no inference: a field missing from every
-- resource of a sample must not change the query); a field of another JSON type reads NULL.
with source as (
    select _file_id, source_file, row_number, resource
    from fhir_resources
    where resource_type = 'Patient'
),

parsed as (
    select
        _file_id,
        source_file,
        row_number,
        json_transform(resource, '{
            "id": "VARCHAR",
            "gender": "VARCHAR",
            "birthDate": "VARCHAR",
            "deceasedDateTime": "VARCHAR",
            "managingOrganization": {"display": "VARCHAR"}
        }') as r
    from source
),

final as (
    select
        _file_id,
        source_file,
        row_number,
        r.id as patient_id,
        r.gender as sex,
        r.birthDate as birth_date,
        r.managingOrganization.display as site,
        -- deceasedBoolean true without a date cannot say from when: left as alive, counted
        local_datetime(r.deceasedDateTime) as death_date,
        null::varchar as _left_out,
        case when r.deceasedDateTime is not null then 'Patients with deceasedDateTime' end as _note
    from parsed
)

select * from final
