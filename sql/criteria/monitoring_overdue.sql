-- Criterion monitoring_overdue: on B12 therapy, and the latest follow-up scheduled from the start
-- of the current therapy episode (CBC at cbc_days; CBC and B12 at cbc_b12_days, then every
-- yearly_days) fell due more than grace_days ago with no matching result since its due date.
-- A CBC is any of cbc_analytes; a B12 any of b12_analytes. The episode survives a late refill:
-- an order after at most refill_gap_days days without cover (the previous cover ends on day E,
-- the order starts by E + 1 + refill_gap_days) continues it,
-- so a short gap does not restart the schedule.
-- source_file/row_number: NULL; the therapy episode and results that are missing decide it.
-- Grain: one row per patient meeting it.
-- (latest_results: a result on or after the due date exists exactly when the latest is.)
-- reads: drug_exposure, latest_results
with on_therapy as (
    select patient_id, current_start_date as started_on
    from drug_exposure(
        getvariable('monitoring_overdue.therapy_groups'),
        gap_days := getvariable('monitoring_overdue.refill_gap_days')
    )
    where is_current
),

schedule as (
    select patient_id, started_on, started_on + day::integer as due_on, day, false as needs_b12
    from on_therapy, unnest(getvariable('monitoring_overdue.cbc_days')) as days (day)
    union all
    select patient_id, started_on, started_on + day::integer, day, true
    from on_therapy, unnest(getvariable('monitoring_overdue.cbc_b12_days')) as days (day)
    union all
    -- yearly after the last scheduled visit, up to the as-of date
    select patient_id, started_on, started_on + day::integer, day, true
    from (
        select
            patient_id,
            started_on,
            list_max(getvariable('monitoring_overdue.cbc_b12_days'))
                + getvariable('monitoring_overdue.yearly_days')::integer * unnest(range(
                    1,
                    1 + greatest(0, (getvariable('run.as_of')::date - started_on
                        - list_max(getvariable('monitoring_overdue.cbc_b12_days')))
                        // getvariable('monitoring_overdue.yearly_days')::integer)
                )) as day
        from on_therapy
    )
),

latest_due as (
    select patient_id, started_on, due_on, max(day) as day, bool_or(needs_b12) as needs_b12
    from schedule
    where due_on <= getvariable('run.as_of')::date
    group by patient_id, started_on, due_on
    qualify row_number() over (partition by patient_id order by due_on desc) = 1
),

results as (
    select patient_id, analyte, collected_at::date as collected_on
    from latest_results
    where collected_at::date <= getvariable('run.as_of')::date
        and (
            list_contains(getvariable('monitoring_overdue.cbc_analytes'), analyte)
            or list_contains(getvariable('monitoring_overdue.b12_analytes'), analyte)
        )
),

checked as (
    select
        latest_due.*,
        exists (
            select 1 from results
            where results.patient_id = latest_due.patient_id
                and results.collected_on >= latest_due.due_on
                and list_contains(getvariable('monitoring_overdue.cbc_analytes'), results.analyte)
        ) as has_cbc,
        exists (
            select 1 from results
            where results.patient_id = latest_due.patient_id
                and results.collected_on >= latest_due.due_on
                and list_contains(getvariable('monitoring_overdue.b12_analytes'), results.analyte)
        ) as has_b12
    from latest_due
),

final as (
    select
        patient_id,
        'monitoring_overdue' as criterion,
        (getvariable('run.as_of')::date - due_on)::double as value,
        'days overdue' as unit,
        due_on::timestamp as observed_at,
        printf('B12 therapy since %s; %s due on %s (day %d), %d days ago; missing: %s',
            started_on, case when needs_b12 then 'CBC and B12' else 'CBC' end, due_on, day,
            getvariable('run.as_of')::date - due_on,
            concat_ws(' and ',
                case when not has_cbc then 'CBC' end,
                case when needs_b12 and not has_b12 then 'B12' end)) as detail,
        detail as evidence,
        null::varchar as source_file,
        null::bigint as row_number,
        null::varchar as note_key
    from checked
    where getvariable('run.as_of')::date - due_on > getvariable('monitoring_overdue.grace_days')
        and (not has_cbc or (needs_b12 and not has_b12))
)

select * from final
