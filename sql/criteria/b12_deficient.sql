-- Criterion b12_deficient: latest serum B12 below the deficiency limit.
-- Grain: one row per patient meeting it.
with latest as (
    select * from latest_lab('b12')
),

final as (
    select
        patient_id,
        'b12_deficient' as criterion,
        value,
        unit,
        observed_at,
        evidence as detail,
        evidence,
        source_file,
        row_number
    from latest
    where is_below(value, censor, getvariable('b12_deficient.below_pg_ml'))
)

select * from final
