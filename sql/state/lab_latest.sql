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
-- Only the columns the criteria read are kept (a window over every column of the history costs
-- about half as much again as one over these).
-- The history is read twice and never held: `results` is not materialised (DuckDB holds a CTE
-- used twice in memory, and past memory on disk: 250M rows of history filled a 70 GB disk),
-- and the second read passes on only the rows at each group's latest time.
with results as not materialized (
    select
        patient_id, analyte, collected_at, result_id, value_canonical, censor, canonical_unit,
        reference_low_canonical, reference_high_canonical, value_reported, unit_reported,
        source_file, row_number
    from state_lab_source
    where analyte is not null
),

-- The latest time of each patient and analyte first (a hash aggregate), then the ordering of
-- only the rows at that time: about half the cost of ordering every row of the history.
-- (collected_at is never NULL in lab_results: a row without a readable time is quarantined.)
-- The rows at that time are found by a 64-bit hash of the patient and analyte with the time,
-- a fixed-width join key instead of two texts. Two groups sharing a hash can only let through
-- a row of another group's time, which is never its own group's latest (its group's rows at
-- the latest time pass too, and the ordering below puts the latest time first), so the
-- answer is exact whatever the hash.
last_time as (
    select hash(patient_id, analyte) as group_hash, max(collected_at) as collected_at
    from results
    group by patient_id, analyte
),

at_last_time as (
    select results.*
    from results
    semi join last_time
        on last_time.group_hash = hash(results.patient_id, results.analyte)
        and last_time.collected_at = results.collected_at
),

final as (
    select * from at_last_time
    qualify row_number() over (
        partition by patient_id, analyte
        order by collected_at desc, try_cast(result_id as double) desc nulls last,
            result_id desc nulls last, value_canonical asc,
            source_file, row_number
    ) = 1
)

select * from final
