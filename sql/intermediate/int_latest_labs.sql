-- Intermediate: the latest valid result of each analyte for each patient, within that
-- analyte's look-back window (rules file) counted back from the as-of date.
-- Grain: one row per patient and analyte.
-- latest_results holds the latest result of each analyte per patient on or before the as-of
-- date (sql/state/lab_latest.sql says how a tie is broken); when that result is older than the
-- window, so is every other, and the patient has no result in it.
-- in_canonical_unit: whether the result was reported in its canonical unit (its evidence then
-- keeps the decimals the lab reported and names no other unit: sql/macros/comparisons.sql).
-- It is worked out once for each pair of units the results hold, not for every result: the
-- unit key is fifteen text replacements and four regular expressions, and working it out on
-- every row took most of the criteria's time (1 s of anemia's 1.4 s at 1M patients).
-- reads: latest_results, rule_analytes
with windows as (
    select analyte, lookback_days, label, report_decimals from rule_analytes
),

units as (
    select
        unit_reported,
        canonical_unit,
        unit_key(unit_reported) is not distinct from unit_key(canonical_unit) as in_canonical_unit
    from (select distinct unit_reported, canonical_unit from latest_results)
),

final as (
    select latest_results.*, windows.label, windows.report_decimals, units.in_canonical_unit
    from latest_results
    inner join windows on windows.analyte = latest_results.analyte
    left join units
        on units.unit_reported is not distinct from latest_results.unit_reported
        and units.canonical_unit is not distinct from latest_results.canonical_unit
    where latest_results.collected_at::date
        between getvariable('run.as_of')::date - windows.lookback_days::integer
        and getvariable('run.as_of')::date
)

select * from final
