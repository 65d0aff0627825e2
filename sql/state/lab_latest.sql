-- State: the latest valid stored result of each analyte for each patient (the kept table
-- lab_latest, pipeline/store/state.py). Every lab criterion reads the latest result in a
-- look-back window, the last date tested, or whether a result came on or after a date; each of
-- these is a question about the latest result of an analyte on or before the as-of date, so
-- the screening reads this table (one row per patient and analyte) and never the history.
-- Grain: one row per patient and analyte, over the rows of state_lab_source: all of
-- lab_results when the state is built, the patients with new or corrected rows tonight when it
-- is kept up to date, or the rows up to an earlier as-of date for a backfill.
-- "Latest" is deterministic: the latest collected_at; on a tie, the highest result_id (ids
-- that are numbers compare as numbers, so '10' is after '9'; rows without an id last); then
-- the lower canonical value (docs/criteria-semantics.md says for which analytes that is the
-- more cautious reading); then source file and row number, so a run never depends on the order
-- rows were read.
with results as (
    select * from state_lab_source
    where analyte is not null
),

final as (
    select * from results
    qualify row_number() over (
        partition by patient_id, analyte
        order by collected_at desc, try_cast(result_id as double) desc nulls last,
            result_id desc nulls last, value_canonical asc,
            source_file, row_number
    ) = 1
)

select * from final
