-- FHIR adapter: Patient resources as the canonical patients (docs/inputs.md, "FHIR R4").
-- Grain: one row per Patient resource (an NDJSON line or a Bundle entry), with its file and
-- line. The JSON is read with an explicit structure (structures/patient.json; no inference:
-- a field missing from every resource of a sample must not change the query); a field of
-- another JSON type reads NULL.
-- _source_identifiers: what the site's [identifiers] columns may be read from (rules profile),
-- by lower-case key: each Patient.identifier's value under its system, its type codes (MR,
-- SS, ...) and its type text, the first of each key kept; and 'name', the first name (text,
-- else given names and family).
with parsed as (
    -- r: the Patient read with sql/adapters/fhir/structures/patient.json
    select _file_id, source_file, row_number, r
    from fhir_patient
    where resource_type = 'Patient'
),

identified as (
    select
        *,
        list_filter(
            list_concat(
                flatten(list_transform(coalesce(r.identifier, []), lambda i: list_transform(
                    list_filter(
                        list_concat([i.system, i.type.text], list_transform(coalesce(i.type.coding, []), lambda c: c.code)),
                        lambda k: nullif(trim(k), '') is not null
                    ),
                    lambda k: {'key': lower(trim(k)), 'value': nullif(trim(i.value), '')}
                ))),
                [{'key': 'name', 'value': nullif(trim(coalesce(
                    r.name[1].text,
                    concat_ws(' ', array_to_string(r.name[1].given, ' '), r.name[1].family)
                )), '')}]
            ),
            lambda e: e.value is not null
        ) as identifier_entries
    from parsed
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
        case when r.deceasedDateTime is not null then 'Patients with deceasedDateTime' end as _note,
        map_from_entries(list_filter(
            identifier_entries,
            lambda e, n: list_position(list_transform(identifier_entries, lambda x: x.key), e.key) = n
        )) as _source_identifiers
    from identified
)

select * from final
