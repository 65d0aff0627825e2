-- Criterion macrocytosis: latest MCV above the limit.
-- With settings.use_lab_reference_range on, the lab's own limit replaces the fixed one.
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
        evidence || limit_note(getvariable('macrocytosis.above_fl'), ref_high) as detail,
        evidence,
        source_file,
        row_number,
        null::varchar as note_key
    from latest
    where is_above(value, censor, rule_limit(getvariable('macrocytosis.above_fl'), ref_high))
)

select * from final
