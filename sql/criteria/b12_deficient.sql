-- Criterion b12_deficient: latest serum B12 below the deficiency limit.
-- With settings.use_lab_reference_range on, the lab's own limit replaces the fixed one.
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
        evidence || limit_note(getvariable('b12_deficient.below_pg_ml'), ref_low) as detail,
        evidence,
        source_file,
        row_number,
        null::varchar as note_key
    from latest
    where is_below(value, censor, rule_limit(getvariable('b12_deficient.below_pg_ml'), ref_low))
)

select * from final
