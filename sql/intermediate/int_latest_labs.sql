-- Intermediate: the latest valid result of each analyte for each patient, within that
-- analyte's look-back window (rules file) counted back from the as-of date.
-- Grain: one row per patient and analyte.
-- "Latest" is deterministic: the latest collected_at; on a tie, the highest result_id (ids
-- that are numbers compare as numbers, so '10' is after '9'; rows without an id last); then
-- the lower canonical value (docs/criteria-semantics.md says for which analytes that is the
-- more cautious reading); then source file and row number, so a run never depends on the order
-- rows were read.
-- reads: lab_results, rule_analytes
with results as (
    select * from lab_results
    where analyte is not null
),

windows as (
    select analyte, lookback_days, label, report_decimals from rule_analytes
),

in_window as (
    select results.*, windows.label, windows.report_decimals
    from results
    inner join windows on windows.analyte = results.analyte
    where results.collected_at::date
        between getvariable('run.as_of')::date - windows.lookback_days::integer
        and getvariable('run.as_of')::date
),

final as (
    select * from in_window
    qualify row_number() over (
        partition by patient_id, analyte
        order by collected_at desc, try_cast(result_id as double) desc nulls last,
            result_id desc nulls last, value_canonical asc,
            source_file, row_number
    ) = 1
)

select * from final
