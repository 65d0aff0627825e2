-- Audit (shared): the stored valid results of each analyte per patient, reduced to what the
-- patient counts need: analytes.sql counts the pairs (patients with a result), funnel.sql those
-- whose last result on or before the as-of date is within the analyte's look-back (patients
-- tested), which is the same as having a result within it. Built once per collection as the
-- temporary table audit_lab_patients: the one pass over every result that groups by patient.
-- Grain: one row per analyte and patient with a stored valid result.
with results as (
    select analyte, patient_id, collected_at::date as collected_on
    from lab_results
    where analyte is not null and patient_id is not null
),

final as (
    select
        analyte,
        patient_id,
        max(collected_on) filter (where collected_on <= getvariable('run.as_of')::date)
            as last_on_or_before_as_of
    from results
    group by analyte, patient_id
)

select * from final
