-- Criterion folate_low: latest serum folate below the limit.
-- Grain: one row per patient meeting it.
with latest as (
    select * from latest_lab('folate')
),

final as (
    select
        patient_id,
        'folate_low' as criterion,
        value,
        unit,
        observed_at,
        evidence as detail,
        evidence,
        source_file,
        row_number
    from latest
    where is_below(value, censor, getvariable('folate_low.below_ng_ml'))
)

select * from final
