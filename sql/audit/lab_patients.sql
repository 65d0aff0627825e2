-- Audit (shared): the stored valid results of each analyte per patient, reduced to what the
-- patient counts need: analytes.sql counts the pairs (patients with a result), funnel.sql those
-- whose last result on or before the as-of date is within the analyte's look-back (patients
-- tested), which is the same as having a result within it. Built once per collection as the
-- temporary table audit_lab_patients.
-- Read from the kept lab state (pipeline/store/state.py), not the history: lab_latest has one
-- row per patient and analyte with any stored valid result, and latest_results the latest on or
-- before the as-of date (the same row, except in a backfill, where a patient's results may all
-- lie after it).
-- Grain: one row per analyte and patient with a stored valid result.
with pairs as (
    select analyte, patient_id from lab_latest
    where patient_id is not null
),

final as (
    select
        pairs.analyte,
        pairs.patient_id,
        latest_results.collected_at::date as last_on_or_before_as_of
    from pairs
    left join latest_results
        on latest_results.patient_id = pairs.patient_id
        and latest_results.analyte = pairs.analyte
)

select * from final
