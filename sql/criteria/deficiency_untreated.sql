-- Criterion deficiency_untreated: a deficient result (b12_deficient or mma_elevated) more than
-- grace_days before the as-of date with no B12 therapy order started since therapy_lookback_days
-- before it. Each deficient result is judged on its own (therapy before an older result does
-- not answer a newer one); the row shows the most recent result that meets it (on a tie, the
-- B12 before the MMA), and source_file/row_number are that result's extract row.
-- note_key: 'on_therapy' when a B12 therapy order is current (started long before the result,
-- so it does not answer it: review adherence, route and dose), else 'not_on_therapy'.
-- Grain: one row per patient meeting it.
-- reads: deficient_results, therapy_orders
with deficiency as (
    select * from deficient_results()
),

therapy as (
    select * from therapy_orders(getvariable('deficiency_untreated.therapy_groups'))
),

unanswered as (
    select patient_id, found_by, deficient_on, source_file, row_number
    from deficiency
    where getvariable('run.as_of')::date - deficient_on > getvariable('deficiency_untreated.grace_days')
        and not exists (
            select 1 from therapy
            where therapy.patient_id = deficiency.patient_id
                and therapy.start_date >= deficiency.deficient_on
                    - getvariable('deficiency_untreated.therapy_lookback_days')::integer
        )
),

most_recent as (
    select * from unanswered
    qualify row_number() over (partition by patient_id order by deficient_on desc, found_by) = 1
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
            as detail,
        detail as evidence,
        source_file,
        row_number,
        case
            when exists (
                select 1 from therapy
                where therapy.patient_id = most_recent.patient_id and therapy.is_current
            ) then 'on_therapy'
            else 'not_on_therapy'
        end as note_key
    from most_recent
)

select * from final
