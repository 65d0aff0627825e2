-- Criterion b12_screening_due: a risk (long-term metformin or acid suppression, a B12-lowering
-- drug, a risk condition, or age at or over the limit) and no B12 or MMA result within the
-- test interval before the as-of date (both ends count, as in the B12 look-back; tested for
-- B12/MMA: sql/intermediate/tested_within.sql). observed_at is the last B12 or MMA result, if any.
-- evidence: why screening is due (the risks in catalogue order, then the age) and when B12 or
-- MMA was last tested ('never tested' without any valid result, however old).
-- Age counts only while screen_by_age is on (a site may switch age-based screening off).
-- note_key: 'age_only' when the age is the only reason (a site may give these patients a list
-- of their own: a worklist item 'b12_screening_due:age_only').
-- source_file/row_number: NULL; a risk and B12 or MMA results that are missing decide it.
-- Grain: one row per patient meeting it.
-- reads: acid_suppression_long_term, b12_lowering_drug, metformin_long_term, patients,
-- reads: risk_condition, rule_criteria, tested_within
with catalogue as (
    select criterion, ordinal from rule_criteria
),

risk_flags as (
    select
        run_flags.patient_id,
        run_flags.criterion,
        case run_flags.criterion
            when 'metformin_long_term' then 'long-term metformin'
            when 'acid_suppression_long_term' then 'long-term acid suppression'
            when 'b12_lowering_drug' then 'B12-lowering drug'
            when 'risk_condition' then 'risk condition'
        end as reason,
        catalogue.ordinal
    from run_flags
    inner join catalogue on catalogue.criterion = run_flags.criterion
    where run_flags.criterion in (
        'metformin_long_term', 'acid_suppression_long_term', 'b12_lowering_drug', 'risk_condition'
    )
),

old_age as (
    select
        patient_id,
        printf('age %d', age_on(birth_date, getvariable('run.as_of')::date)) as criterion,
        printf('age %d', age_on(birth_date, getvariable('run.as_of')::date)) as reason,
        null::integer as ordinal
    from patients
    where getvariable('b12_screening_due.screen_by_age')
        and age_on(birth_date, getvariable('run.as_of')::date) >= getvariable('b12_screening_due.age_at_least')
),

risks as (
    select
        patient_id,
        string_agg(criterion, ', ' order by criterion) as reasons,
        string_agg(reason, ', ' order by ordinal asc nulls last) as why_due,
        count(ordinal) = 0 as is_age_only
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
        'B12 screening due: ' || risks.why_due
            || coalesce('; last tested ' || strftime(tested.last_tested_at, '%Y-%m-%d'), '; never tested')
            as evidence,
        null::varchar as source_file,
        null::bigint as row_number,
        case when risks.is_age_only then 'age_only' end as note_key
    from risks
    left join tested on tested.patient_id = risks.patient_id
    where not coalesce(tested.is_tested, false)
)

select * from final
