-- Criterion mma_elevated: latest MMA above the limit: functional B12 deficiency.
-- Grain: one row per patient meeting it.
with latest as (
    select * from latest_lab('mma')
),

final as (
    select
        patient_id,
        'mma_elevated' as criterion,
        value,
        unit,
        observed_at,
        evidence as detail,
        evidence,
        source_file,
        row_number
    from latest
    where is_above(value, censor, getvariable('mma_elevated.above_nmol_l'))
)

select * from final
