-- Intermediate: the latest valid result of each analyte for each patient, within that
-- analyte's look-back window (rules file) counted back from the as-of date.
-- Grain: one row per patient and analyte.
-- latest_results holds the latest result of each analyte per patient on or before the as-of
-- date (sql/state/lab_latest.sql says how a tie is broken); when that result is older than the
-- window, so is every other, and the patient has no result in it.
-- reads: latest_results, rule_analytes
with windows as (
    select analyte, lookback_days, label, report_decimals from rule_analytes
),

final as (
    select latest_results.*, windows.label, windows.report_decimals
    from latest_results
    inner join windows on windows.analyte = latest_results.analyte
    where latest_results.collected_at::date
        between getvariable('run.as_of')::date - windows.lookback_days::integer
        and getvariable('run.as_of')::date
)

select * from final
