-- tested_within(days, analytes := ['b12', 'mma']): "tested for B12/MMA", defined once, for the
-- criteria (b12_screening_due, cytopenia_b12_untested) and the care-process measures.
-- A patient is tested when a stored valid result (quarantined rows never reach lab_results) of
-- any of the analytes was collected in the `days` up to the as-of date, both ends counted as in
-- the look-backs; days NULL: in each analyte's own look-back window ([analytes] in the rules
-- file), the window the latest-result criteria read. analytes: B12 or MMA unless a measure
-- passes its own list from the rules file.
-- Columns: is_tested; tested_on, the date of the latest result in the window (NULL when none);
-- last_tested_at, the latest result on or before the as-of date however old ("last tested").
-- Grain: one row per patient with any valid result of the analytes up to the as-of date.
-- Read from the latest result of each analyte (latest_results): a result in the window exists
-- exactly when the latest one is in it, and the latest in the window is the latest of all.
-- reads: latest_results, rule_analytes
CREATE OR REPLACE TEMP MACRO tested_within(days, analytes := ['b12', 'mma']) AS TABLE
    with results as (
        select
            latest_results.patient_id,
            latest_results.collected_at,
            latest_results.collected_at::date >= getvariable('run.as_of')::date
                - coalesce(days, windows.lookback_days)::integer as in_window
        from latest_results
        left join rule_analytes as windows on windows.analyte = latest_results.analyte
        where list_contains(analytes, latest_results.analyte)
            and latest_results.collected_at::date <= getvariable('run.as_of')::date
    ),

    final as (
        select
            patient_id,
            coalesce(bool_or(in_window), false) as is_tested,
            (max(collected_at) filter (where in_window))::date as tested_on,
            max(collected_at) as last_tested_at
        from results
        group by patient_id
    )

    select * from final;
