-- Mart: patients who were on the previous run's worklist and are not on this one, with why.
-- Grain: one row per patient who left the worklist (the previous run: int_previous_worklist).
-- The reason is the first that applies:
--   deceased            they died on or before the as-of date (patients.death_date);
--   feedback            a clinician's feedback now suppresses their flags;
--   treatment started   a B12 therapy order started after the previous as-of date;
--   corrected result    one of their lab results was corrected since the previous run;
--   new result          a new valid lab result was collected after the previous as-of date;
--   no longer met       otherwise (results aged out of their look-back, or the rules changed).
-- reads: flags, int_previous_worklist, lab_result_corrections, latest_results, patients,
-- reads: therapy_orders, worklist
with previous_worklist as (
    select * from int_previous_worklist
),

left_worklist as (
    select * from previous_worklist
    anti join run_worklist on run_worklist.patient_id = previous_worklist.patient_id
),

deceased as (
    select patient_id, death_date from patients where deceased_by_as_of(death_date)
),

suppressed as (
    select patient_id, string_agg(criterion || ': ' || feedback_action, ', ') as detail
    from run_flags where is_suppressed group by patient_id
),

-- The three below are computed for the patients who left only (a semi join before the
-- aggregate): over every patient, new_results alone grouped the whole lab history each night.
therapy_started as (
    select patient_id, max(start_date) as started_on
    from therapy_orders(getvariable('deficiency_untreated.therapy_groups'))
    semi join left_worklist using (patient_id)
    group by patient_id
),

corrections as (
    select patient_id, max(as_of) as corrected_on
    from lab_result_corrections
    semi join left_worklist using (patient_id)
    where as_of <= getvariable('run.as_of')::date
    group by patient_id
),

new_results as (
    select patient_id, max(collected_at)::date as latest_on
    from latest_results
    semi join left_worklist using (patient_id)
    where analyte is not null and collected_at::date <= getvariable('run.as_of')::date
        -- only a result after a previous as-of date can be a reason (an earlier one, or none,
        -- gives the same reason): most of the history is skipped before the join
        and collected_at::date > (select min(previous_as_of) from left_worklist)
    group by patient_id
),

final as (
    select
        left_worklist.patient_id,
        left_worklist.previous_as_of,
        left_worklist.priority as previous_priority,
        left_worklist.criteria as previous_criteria,
        case
            when deceased.patient_id is not null then 'deceased'
            when suppressed.patient_id is not null then 'feedback'
            when therapy_started.started_on > left_worklist.previous_as_of then 'treatment started'
            when corrections.corrected_on > left_worklist.previous_as_of then 'corrected result'
            when new_results.latest_on > left_worklist.previous_as_of then 'new result'
            else 'no longer met'
        end as reason,
        case
            when deceased.patient_id is not null then 'died on ' || deceased.death_date
            when suppressed.patient_id is not null then suppressed.detail
            when therapy_started.started_on > left_worklist.previous_as_of
                then 'B12 therapy started ' || therapy_started.started_on
            when corrections.corrected_on > left_worklist.previous_as_of
                then 'a result was corrected on ' || corrections.corrected_on
            when new_results.latest_on > left_worklist.previous_as_of
                then 'new result on ' || new_results.latest_on
            else 'criteria no longer met on ' || getvariable('run.as_of')::date
        end as detail
    from left_worklist
    left join deceased on deceased.patient_id = left_worklist.patient_id
    left join suppressed on suppressed.patient_id = left_worklist.patient_id
    left join therapy_started on therapy_started.patient_id = left_worklist.patient_id
    left join corrections on corrections.patient_id = left_worklist.patient_id
    left join new_results on new_results.patient_id = left_worklist.patient_id
)

select * from final
order by patient_id
