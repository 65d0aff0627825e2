-- Audit: stored valid results per analyte, and how they were recognised.
-- Grain: one row per analyte of the rules file (zeros where it has no result).
-- The results are counted per analyte and patient first, so that the distinct patients are
-- counted in the same pass over lab_results (a count(distinct) beside the other counts, after
-- a join, cost half as much again at 10M results).
with per_patient as (
    select
        analyte,
        patient_id,
        count(_rid) as results,
        count(*) filter (where coded_by = 'loinc') as by_loinc,
        count(*) filter (where coded_by = 'test_name') as by_name,
        count(*) filter (where censor is not null) as censored
    from lab_results
    where analyte is not null
    group by analyte, patient_id
),

per_analyte as (
    select
        analyte,
        sum(results) as results,
        count(patient_id) as patients,
        sum(by_loinc) as by_loinc,
        sum(by_name) as by_name,
        sum(censored) as censored
    from per_patient
    group by analyte
),

final as (
    select
        rule_analytes.analyte,
        rule_analytes.label,
        rule_analytes.canonical_unit,
        rule_analytes.lookback_days,
        coalesce(per_analyte.results, 0)::bigint as results,
        coalesce(per_analyte.patients, 0)::bigint as patients,
        coalesce(per_analyte.by_loinc, 0)::bigint as by_loinc,
        coalesce(per_analyte.by_name, 0)::bigint as by_name,
        coalesce(per_analyte.censored, 0)::bigint as censored
    from rule_analytes
    left join per_analyte on per_analyte.analyte = rule_analytes.analyte
)

select * from final order by results desc, analyte
