-- Criterion metformin_long_term: metformin exposure above the limit in total, current or
-- stopped recently (sql/intermediate/drug_exposure.sql).
-- source_file/row_number: NULL; the exposure adds up every order of the episodes, no single row
-- decides it. evidence: the drug group, exposure days and dates (as the detail).
-- Grain: one row per patient meeting it.
-- reads: long_term_exposure
with exposure as (
    select * from long_term_exposure(
        getvariable('metformin_long_term.drug_groups'),
        getvariable('metformin_long_term.min_exposure_days'),
        getvariable('metformin_long_term.recent_stop_days')
    )
),

final as (
    select
        patient_id,
        'metformin_long_term' as criterion,
        exposure_days::double as value,
        'days' as unit,
        last_end_date::timestamp as observed_at,
        printf('metformin %d days since %s, %s', exposure_days, first_start_date,
            case when is_current then 'current' else 'last on ' || last_end_date end) as detail,
        detail as evidence,
        null::varchar as source_file,
        null::bigint as row_number,
        null::varchar as note_key
    from exposure
)

select * from final
