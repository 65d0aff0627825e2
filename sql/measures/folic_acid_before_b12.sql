-- Measure folic_acid_before_b12: of the deficient patients, how many had folic acid started
-- (from lookback_days before the deficient result on) before any B12 therapy in that time,
-- or with no B12 therapy at all. Historical cases count even when both are current today.
-- Grain: one row per patient in the denominator.
with deficiency as (
    select patient_id, min(observed_at)::date as deficient_on
    from run_flags
    where criterion in ('b12_deficient', 'mma_elevated')
    group by patient_id
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

first_b12 as (
    select deficiency.patient_id, min(orders.start_date) as started_on
    from deficiency
    inner join therapy_orders(getvariable('folic_acid_before_b12.therapy_groups')) as orders
        on orders.patient_id = deficiency.patient_id
    where orders.start_date >= deficiency.deficient_on
        - getvariable('folic_acid_before_b12.lookback_days')::integer
    group by deficiency.patient_id
),

final as (
    select
        deficiency.patient_id,
        coalesce(first_folate.started_on < coalesce(first_b12.started_on, date '9999-12-31'), false)
            as in_numerator,
        coalesce(first_folate.started_on, deficiency.deficient_on) as event_date
    from deficiency
    left join first_folate on first_folate.patient_id = deficiency.patient_id
    left join first_b12 on first_b12.patient_id = deficiency.patient_id
)

select * from final
