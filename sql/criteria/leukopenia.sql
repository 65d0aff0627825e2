-- Criterion leukopenia: latest WBC below the limit.
-- Grain: one row per patient meeting it.
with latest as (
    select * from latest_lab('wbc')
),

final as (
    select
        patient_id,
        'leukopenia' as criterion,
        value,
        unit,
        observed_at,
        evidence as detail,
        evidence,
        source_file,
        row_number
    from latest
    where is_below(value, censor, getvariable('leukopenia.below_10e9_l'))
)

select * from final
