-- Measure b12_started_within_7_days: of the deficient patients whose window has closed, how
-- many started B12 therapy on the day of the deficient result or within window_days after it.
-- Patients already on B12 therapy on the day of the result (an order covering it, a one-day
-- injection record up to its covered_until) are not in the denominator.
-- Grain: one row per patient in the denominator.
-- reads: deficient_patients, therapy_orders
with deficiency as (
    select * from deficient_patients()
),

therapy as (
    select * from therapy_orders(getvariable('b12_started_within_7_days.therapy_groups'))
),

window_closed as (
    select * from deficiency
    where getvariable('run.as_of')::date - deficient_on
        >= getvariable('b12_started_within_7_days.window_days')
),

already_on_therapy as (
    select distinct window_closed.patient_id
    from window_closed
    inner join therapy on therapy.patient_id = window_closed.patient_id
    where therapy.start_date < window_closed.deficient_on
        and coalesce(therapy.covered_until, getvariable('run.as_of')::date) >= window_closed.deficient_on
),

started as (
    select window_closed.patient_id, min(therapy.start_date) as started_on
    from window_closed
    inner join therapy on therapy.patient_id = window_closed.patient_id
    where therapy.start_date between window_closed.deficient_on
        and window_closed.deficient_on
            + getvariable('b12_started_within_7_days.window_days')::integer
    group by window_closed.patient_id
),

final as (
    select
        window_closed.patient_id,
        started.patient_id is not null as in_numerator,
        window_closed.deficient_on as event_date
    from window_closed
    anti join already_on_therapy on already_on_therapy.patient_id = window_closed.patient_id
    left join started on started.patient_id = window_closed.patient_id
)

select * from final
