-- tested_within(analytes, days): patients with a stored valid result of any of the analytes
-- collected in the days up to the as-of date (both ends counted, as in the look-backs), with
-- the date of the latest. Grain: one row per patient tested.
CREATE OR REPLACE TEMP MACRO tested_within(analytes, days) AS TABLE
    select patient_id, max(collected_at)::date as tested_on
    from lab_results
    where list_contains(analytes, analyte)
        and collected_at::date <= getvariable('run.as_of')::date
        and collected_at::date >= getvariable('run.as_of')::date - days::integer
    group by patient_id;
