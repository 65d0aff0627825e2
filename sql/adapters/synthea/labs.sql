-- Synthea adapter: observations.csv as the canonical labs (docs/inputs.md, "Synthea CSV").
-- Grain: one row per observation in the laboratory category; every row when the file has no
-- CATEGORY column (Synthea before 3.0), the rows no rule uses being counted as unmapped tests
-- as any unlisted test is. CODE is LOINC, DESCRIPTION the test name, DATE on the source's own
-- clock (local_datetime). Synthea writes no result id.
select
    _file_id,
    source_file,
    row_number,
    patient as patient_id,
    local_datetime(date) as collected_at,
    code as loinc,
    description as test_name,
    value,
    units as unit,
    null::varchar as result_id,
    null::varchar as reference_low,
    null::varchar as reference_high
from src_observations
where category is null or lower(trim(category)) = 'laboratory'
