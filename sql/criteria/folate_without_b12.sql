-- Criterion folate_without_b12 (safety): B12 deficiency (b12_deficient or mma_elevated), folic
-- acid current, and no B12 therapy that is current or started since therapy_lookback_days
-- before the deficient result (the earliest deficient result of this run).
-- Grain: one row per patient meeting it.
with deficiency as (
    select * from deficient_patients()
),

folic_acid as (
    select patient_id, min(start_date) as since
    from therapy_orders(getvariable('folate_without_b12.folate_groups'))
    where is_current
    group by patient_id
),

therapy as (
    select * from therapy_orders(getvariable('folate_without_b12.therapy_groups'))
),

final as (
    select
        deficiency.patient_id,
        'folate_without_b12' as criterion,
        null::double as value,
        null::varchar as unit,
        deficiency.deficient_on::timestamp as observed_at,
        printf('folic acid current since %s; deficient B12 or MMA result on %s; no B12 therapy',
            folic_acid.since, deficiency.deficient_on) as detail,
        detail as evidence
    from deficiency
    inner join folic_acid on folic_acid.patient_id = deficiency.patient_id
    where not exists (
        select 1 from therapy
        where therapy.patient_id = deficiency.patient_id
            and (
                therapy.is_current
                or therapy.start_date >= deficiency.deficient_on
                    - getvariable('folate_without_b12.therapy_lookback_days')::integer
            )
    )
)

select * from final
