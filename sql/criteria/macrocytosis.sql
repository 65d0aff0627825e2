-- Criterion macrocytosis: latest MCV above the limit.
-- Grain: one row per patient meeting it.
with latest as (
    select * from latest_lab('mcv')
),

final as (
    select
        patient_id,
        'macrocytosis' as criterion,
        value,
        unit,
        observed_at,
        evidence as detail,
        evidence,
        source_file,
        row_number
    from latest
    where is_above(value, censor, getvariable('macrocytosis.above_fl'))
)

select * from final
