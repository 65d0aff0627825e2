-- Criterion b12_screening_due: a risk (long-term metformin or acid suppression, a B12-lowering
-- drug, a risk condition, or age at or over the limit) and no B12 or MMA result within the
-- test interval before the as-of date (both ends count, as in the B12 look-back; tested for
-- B12/MMA: sql/intermediate/tested_within.sql). observed_at is the last B12 or MMA result, if any.
-- source_file/row_number: NULL; a risk and B12 or MMA results that are missing decide it.
-- Grain: one row per patient meeting it.
with risk_flags as (
    select patient_id, criterion from run_flags
    where criterion in (
        'metformin_long_term', 'acid_suppression_long_term', 'b12_lowering_drug', 'risk_condition'
    )
),

old_age as (
    select patient_id, printf('age %d', age_on(birth_date, getvariable('run.as_of')::date)) as criterion
    from patients
    where age_on(birth_date, getvariable('run.as_of')::date) >= getvariable('b12_screening_due.age_at_least')
),

risks as (
    select patient_id, string_agg(criterion, ', ' order by criterion) as reasons
    from (select * from risk_flags union all select * from old_age)
    group by patient_id
),

tested as (
    select * from tested_within(getvariable('b12_screening_due.test_interval_days'))
),

final as (
    select
        risks.patient_id,
        'b12_screening_due' as criterion,
        null::double as value,
        null::varchar as unit,
        tested.last_tested_at as observed_at,
        risks.reasons || printf('; no B12 or MMA in the last %d days',
            getvariable('b12_screening_due.test_interval_days')::integer)
            || coalesce('; last tested ' || strftime(tested.last_tested_at, '%Y-%m-%d'), '; never tested')
            as detail,
        null::varchar as evidence,
        null::varchar as source_file,
        null::bigint as row_number,
        null::varchar as note_key
    from risks
    left join tested on tested.patient_id = risks.patient_id
    where not coalesce(tested.is_tested, false)
)

select * from final
