-- Synthea adapter: patients.csv as the canonical patients (docs/inputs.md, "Synthea CSV").
-- Grain: one row per patients.csv row. Synthea writes no clinic or practice: site is empty.
-- _source_identifiers: what the site's [identifiers] columns may be read from (rules profile):
-- ssn, drivers, passport, first, last, and name (first and last).
select
    _file_id,
    source_file,
    row_number,
    id as patient_id,
    gender as sex,
    birthdate as birth_date,
    null::varchar as site,
    local_datetime(deathdate) as death_date,
    map_from_entries(list_filter(
        [
            {'key': 'ssn', 'value': nullif(trim(ssn), '')},
            {'key': 'drivers', 'value': nullif(trim(drivers), '')},
            {'key': 'passport', 'value': nullif(trim(passport), '')},
            {'key': 'first', 'value': nullif(trim(first), '')},
            {'key': 'last', 'value': nullif(trim(last), '')},
            {'key': 'name', 'value': nullif(trim(concat_ws(' ', trim(first), trim(last))), '')}
        ],
        lambda e: e.value is not null
    )) as _source_identifiers
from src_patients
