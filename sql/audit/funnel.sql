-- Audit: the criteria funnel of this run. Grain: one row per stage and item: the patients in the
-- database, those with a valid result of each analyte within its look-back (tested), those
-- meeting each criterion, and those on the worklist (in all and per priority).
with population as (
    select 1 as stage_order, 0 as item_order, 'population' as stage, 'patients' as item,
        'patients in the extracts (valid, stored)' as label, count(*) as patients
    from patients
),

children as (
    select 1 as stage_order, 1 as item_order, 'population' as stage, 'under_minimum_age' as item,
        'patients under the minimum age (counted, not screened)' as label, count(*) as patients
    from patients
    where below_minimum_age(birth_date)
),

deceased as (
    select 1 as stage_order, 2 as item_order, 'population' as stage, 'deceased' as item,
        'patients who died on or before the as-of date (counted, not screened)' as label,
        count(*) as patients
    from patients
    where deceased_by_as_of(death_date)
),

tested as (
    select
        2 as stage_order,
        row_number() over (order by rule_analytes.analyte) as item_order,
        'tested' as stage,
        rule_analytes.analyte as item,
        printf('%s result in the last %d days', rule_analytes.label, rule_analytes.lookback_days) as label,
        -- latest_results has one row per patient and analyte: no distinct count is needed
        count(latest_results.patient_id) as patients
    from rule_analytes
    left join latest_results
        on latest_results.analyte = rule_analytes.analyte
        and latest_results.collected_at::date <= getvariable('run.as_of')::date
        and latest_results.collected_at::date
            >= getvariable('run.as_of')::date - rule_analytes.lookback_days::integer
    group by rule_analytes.analyte, rule_analytes.label, rule_analytes.lookback_days
),

criteria as (
    select
        3 as stage_order,
        rule_criteria.ordinal as item_order,
        'criterion' as stage,
        rule_criteria.criterion as item,
        rule_criteria.criterion || ' (' || rule_criteria.role
            || case when rule_criteria.enabled then '' else ', off' end || ')' as label,
        count(distinct run_flags.patient_id) as patients
    from rule_criteria
    left join run_flags on run_flags.criterion = rule_criteria.criterion
    group by all
),

worklist as (
    select
        4 as stage_order,
        coalesce(rank, 0) as item_order,
        'worklist' as stage,
        coalesce(priority, 'total') as item,
        coalesce('on the worklist: ' || priority, 'on the worklist') as label,
        patients
    from (
        -- the total row orders first (0): min(rank) over every priority would tie it with the
        -- most urgent, in either order
        select priority, if(grouping(priority) = 1, 0, min(rank)) as rank, count(*) as patients
        from (
            select run_worklist.*, rule_priorities.rank + 1 as rank  -- 0 is the total row
            from run_worklist
            inner join rule_priorities on rule_priorities.priority = run_worklist.priority
        )
        group by rollup (priority)
    )
),

final as (
    select * from population
    union all select * from children
    union all select * from deceased
    union all select * from tested
    union all select * from criteria
    union all select * from worklist
)

select stage, item, label, patients from final order by stage_order, item_order
