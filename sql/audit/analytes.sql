-- Audit: stored valid results per analyte, and how they were recognised.
-- Grain: one row per analyte of the rules file (zeros where it has no result).
-- The results are counted from the kept profile of the stored results (sql/state/lab_profile.sql,
-- one row per coding, value and censoring), and the patients from the kept lab state
-- (sql/state/lab_latest.sql, one row per patient and analyte with a stored valid result): the
-- history is not read.
with patients as (
    select analyte, count(*) as patients
    from lab_latest
    where patient_id is not null
    group by analyte
),

results as (
    select
        lab_codings.analyte,
        sum(lab_profile.results)::bigint as results,
        coalesce(sum(lab_profile.results) filter (where lab_codings.coded_by = 'loinc'), 0)::bigint
            as by_loinc,
        coalesce(sum(lab_profile.results) filter (where lab_codings.coded_by = 'test_name'), 0)::bigint
            as by_name,
        coalesce(sum(lab_profile.results) filter (where lab_profile.censored), 0)::bigint as censored
    from lab_profile
    inner join lab_codings on lab_codings.coding_id = lab_profile.coding_id
    where lab_codings.analyte is not null
    group by lab_codings.analyte
),

final as (
    select
        rule_analytes.analyte,
        rule_analytes.label,
        rule_analytes.canonical_unit,
        rule_analytes.lookback_days,
        coalesce(results.results, 0) as results,
        coalesce(patients.patients, 0) as patients,
        coalesce(results.by_loinc, 0) as by_loinc,
        coalesce(results.by_name, 0) as by_name,
        coalesce(results.censored, 0) as censored
    from rule_analytes
    left join results on results.analyte = rule_analytes.analyte
    left join patients on patients.analyte = rule_analytes.analyte
)

select * from final order by results desc, analyte
