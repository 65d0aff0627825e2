-- Synthea adapter: conditions.csv as the canonical diagnoses (docs/inputs.md, "Synthea CSV").
-- Grain: one row per conditions.csv row. CODE is SNOMED CT unless the SYSTEM column (Synthea 3
-- and later) names ICD-10; START is the date recorded.
select
    _file_id,
    source_file,
    row_number,
    patient as patient_id,
    code,
    case
        when lower(system) like '%icd%10%' or lower(system) like '%icd-10%' then 'icd10'
        else 'snomed'
    end as code_system,
    local_datetime(start) as recorded_at,
    description
from src_conditions
