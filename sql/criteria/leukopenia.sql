-- Criterion leukopenia: latest WBC below the limit.
-- With settings.use_lab_reference_range on, the lab's own limit replaces the fixed one.
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
        evidence || limit_note(getvariable('leukopenia.below_10e9_l'), ref_low) as detail,
        evidence,
        source_file,
        row_number,
        null::varchar as note_key
    from latest
    where is_below(value, censor, rule_limit(getvariable('leukopenia.below_10e9_l'), ref_low))
)

select * from final
