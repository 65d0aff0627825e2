-- Synthea adapter: patients.csv as the canonical patients (docs/inputs.md, "Synthea CSV").
-- Grain: one row per patients.csv row. Synthea writes no clinic or practice: site is empty.
select
    _file_id,
    source_file,
    row_number,
    id as patient_id,
    gender as sex,
    birthdate as birth_date,
    null::varchar as site,
    local_datetime(deathdate) as death_date
from src_patients
