-- Criterion b12_indeterminate: latest serum B12 in the indeterminate band (from the deficiency
-- limit up to the upper limit, both inclusive) and no MMA result on or after its date (an MMA
-- drawn the same day counts, whatever the time), up to the as-of date. A censored '<X' result counts when X is within the band, since its true
-- value is certainly not above the upper limit.
-- Grain: one row per patient meeting it.
-- (latest_results: an MMA on or after a date exists exactly when the latest MMA is.)
-- reads: latest_lab, latest_results
with latest_b12 as (
    select * from latest_lab('b12')
),

mma_results as (
    select patient_id, collected_at
    from latest_results
    where analyte = 'mma'
        and collected_at::date <= getvariable('run.as_of')::date
),

final as (
    select
        latest_b12.patient_id,
        'b12_indeterminate' as criterion,
        latest_b12.value,
        latest_b12.unit,
        latest_b12.observed_at,
        latest_b12.evidence || '; no MMA since' as detail,
        latest_b12.evidence,
        latest_b12.source_file,
        latest_b12.row_number,
        null::varchar as note_key
    from latest_b12
    where not is_below(latest_b12.value, latest_b12.censor, getvariable('b12_deficient.below_pg_ml'))
        and is_at_most(latest_b12.value, latest_b12.censor, getvariable('b12_indeterminate.upper_pg_ml'))
        and not exists (
            select 1 from mma_results
            where mma_results.patient_id = latest_b12.patient_id
                and mma_results.collected_at::date >= latest_b12.observed_at::date
        )
)

select * from final
