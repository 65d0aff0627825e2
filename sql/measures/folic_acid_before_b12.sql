-- Measure folic_acid_before_b12: of the deficient patients, how many had their first folic
-- acid order (from lookback_days before the deficient result on) start while no B12 therapy
-- was under way: none begun in the look-back by that day (a same-day start counts as under
-- way) and none begun earlier still running. Historical cases count even when both are
-- current today.
-- Grain: one row per patient in the denominator.
-- reads: deficient_patients, therapy_orders
with deficiency as (
    select * from deficient_patients()
),

first_folate as (
    select deficiency.patient_id, min(orders.start_date) as started_on
    from deficiency
    inner join therapy_orders(getvariable('folic_acid_before_b12.folate_groups')) as orders
        on orders.patient_id = deficiency.patient_id
    where orders.start_date >= deficiency.deficient_on
        - getvariable('folic_acid_before_b12.lookback_days')::integer
    group by deficiency.patient_id
),

b12_by_then as (
    -- B12 therapy under way when the folic acid started: begun in the look-back on or before
    -- that day, or begun earlier and still running that day
    select distinct first_folate.patient_id
    from first_folate
    inner join deficiency on deficiency.patient_id = first_folate.patient_id
    inner join therapy_orders(getvariable('folic_acid_before_b12.therapy_groups')) as orders
        on orders.patient_id = first_folate.patient_id
    where orders.start_date <= first_folate.started_on
        and (
            orders.start_date >= deficiency.deficient_on
                - getvariable('folic_acid_before_b12.lookback_days')::integer
            or coalesce(orders.covered_until, getvariable('run.as_of')::date) >= first_folate.started_on
        )
),

final as (
    select
        deficiency.patient_id,
        first_folate.patient_id is not null and b12_by_then.patient_id is null as in_numerator,
        coalesce(first_folate.started_on, deficiency.deficient_on) as event_date
    from deficiency
    left join first_folate on first_folate.patient_id = deficiency.patient_id
    left join b12_by_then on b12_by_then.patient_id = deficiency.patient_id
)

select * from final
