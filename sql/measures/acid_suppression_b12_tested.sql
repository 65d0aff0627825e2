-- Measure acid_suppression_b12_tested: of the long-term PPI or H2-blocker users (acid_suppression_long_term), how many have a
-- result of tested_analytes collected in the lookback_days up to the as-of date.
-- Grain: one row per patient in the denominator.
-- reads: flags, tested_within
with users as (
    select distinct patient_id from run_flags where criterion = 'acid_suppression_long_term'
),

tested as (
    select * from tested_within(
        getvariable('acid_suppression_b12_tested.lookback_days'),
        analytes := getvariable('acid_suppression_b12_tested.tested_analytes')
    )
),

final as (
    select
        users.patient_id,
        coalesce(tested.is_tested, false) as in_numerator,
        tested.tested_on as event_date
    from users
    left join tested on tested.patient_id = users.patient_id
)

select * from final
