-- Criterion homocysteine_elevated: latest homocysteine above the limit.
-- Grain: one row per patient meeting it.
with latest as (
    select * from latest_lab('homocysteine')
),

final as (
    select
        patient_id,
        'homocysteine_elevated' as criterion,
        value,
        unit,
        observed_at,
        evidence as detail,
        evidence,
        source_file,
        row_number
    from latest
    where is_above(value, censor, getvariable('homocysteine_elevated.above_umol_l'))
)

select * from final
