-- Intermediate: who was on the worklist of the previous run, the one status and resolved.csv
-- compare with: the latest successful run with an earlier as-of date (so a run repeated for the
-- same date gives the same answers).
-- Grain: one row per patient on that run's worklist.
-- reads: runs, worklist_history
with previous_run as (
    select run_id, as_of from runs
    where status = 'succeeded' and as_of < getvariable('run.as_of')::date
    order by as_of desc, finished_at desc
    limit 1
),

final as (
    select
        worklist_history.patient_id,
        worklist_history.priority,
        worklist_history.criteria,
        previous_run.as_of as previous_as_of
    from worklist_history
    inner join previous_run on previous_run.run_id = worklist_history.run_id
)

select * from final
