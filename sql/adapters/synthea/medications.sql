-- Synthea adapter: medications.csv as the canonical medications (docs/inputs.md, "Synthea CSV").
-- Grain: one row per medications.csv row. CODE is RxNorm; an empty STOP is a medication still
-- taken (open-ended, as an empty canonical end_date; counted in counts.sql).
select
    _file_id,
    source_file,
    row_number,
    patient as patient_id,
    description as medication,
    code as rxnorm,
    null::varchar as atc,
    local_datetime(start) as start_date,
    local_datetime(stop) as end_date,
    null::varchar as route
from src_medications
