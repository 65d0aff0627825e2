-- Criterion critical_anemia: latest hemoglobin below the critical limit.
-- Grain: one row per patient meeting it.
-- reads: latest_lab
with latest as (
    select * from latest_lab('hgb')
),

final as (
    select
        patient_id,
        'critical_anemia' as criterion,
        value,
        unit,
        observed_at,
        evidence as detail,
        evidence,
        source_file,
        row_number,
        null::varchar as note_key
    from latest
    where is_below(value, censor, getvariable('critical_anemia.below_g_dl'))
)

select * from final
