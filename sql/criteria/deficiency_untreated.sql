-- Criterion deficiency_untreated: B12 deficiency (b12_deficient or mma_elevated; the earliest
-- deficient result of this run) more than grace_days before the as-of date, and no B12 therapy
-- order started since therapy_lookback_days before that result.
-- Grain: one row per patient meeting it.
with deficiency as (
    select * from deficient_patients()
),

therapy as (
    select * from therapy_orders(getvariable('deficiency_untreated.therapy_groups'))
),

final as (
    select
        patient_id,
        'deficiency_untreated' as criterion,
        (getvariable('run.as_of')::date - deficient_on)::double as value,
        'days' as unit,
        deficient_on::timestamp as observed_at,
        printf('deficient on %s, %d days ago; no B12 therapy started since %s',
            deficient_on, getvariable('run.as_of')::date - deficient_on,
            deficient_on - getvariable('deficiency_untreated.therapy_lookback_days')::integer)
            as detail
    from deficiency
    where getvariable('run.as_of')::date - deficient_on > getvariable('deficiency_untreated.grace_days')
        and not exists (
            select 1 from therapy
            where therapy.patient_id = deficiency.patient_id
                and therapy.start_date >= deficiency.deficient_on
                    - getvariable('deficiency_untreated.therapy_lookback_days')::integer
        )
)

select * from final
