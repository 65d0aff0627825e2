-- Criterion neutropenia: latest absolute neutrophil count below the limit, graded mild,
-- moderate or severe in the detail.
-- Grain: one row per patient meeting it.
-- reads: latest_lab
with latest_anc as (
    select * from latest_lab('anc')
),

final as (
    select
        patient_id,
        'neutropenia' as criterion,
        value,
        unit,
        observed_at,
        evidence || '; grade ' || case
            when is_below(value, censor, getvariable('neutropenia.severe_below_10e9_l')) then 'severe'
            when is_below(value, censor, getvariable('neutropenia.moderate_below_10e9_l')) then 'moderate'
            else 'mild'
        end as detail,
        evidence,
        source_file,
        row_number,
        null::varchar as note_key
    from latest_anc
    where is_below(value, censor, rule_limit(getvariable('neutropenia.below_10e9_l'), ref_low))
)

select * from final
