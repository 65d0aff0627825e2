-- Criterion mma_elevated: latest MMA above the limit: functional B12 deficiency.
-- With settings.use_lab_reference_range on, the lab's own limit replaces the fixed one.
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
        evidence || limit_note(getvariable('mma_elevated.above_nmol_l'), ref_high) as detail,
        evidence,
        source_file,
        row_number,
        null::varchar as note_key
    from latest
    where is_above(value, censor, rule_limit(getvariable('mma_elevated.above_nmol_l'), ref_high))
)

select * from final
