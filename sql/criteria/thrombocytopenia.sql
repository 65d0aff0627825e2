-- Criterion thrombocytopenia: latest platelet count below the limit. The detail names the band
-- (below the transfusion, high-risk or IM-caution limits) that decides how B12 is injected and
-- whether transfusion support is needed; note_key picks that band's note (rules file) for the
-- worklist.
-- Grain: one row per patient meeting it.
-- reads: latest_lab
with latest_platelets as (
    select * from latest_lab('platelets')
),

banded as (
    select
        *,
        case
            when is_below(value, censor, getvariable('thrombocytopenia.band_transfusion_10e9_l'))
                then printf('below %g', getvariable('thrombocytopenia.band_transfusion_10e9_l'))
            when is_below(value, censor, getvariable('thrombocytopenia.band_im_high_risk_10e9_l'))
                then printf('below %g', getvariable('thrombocytopenia.band_im_high_risk_10e9_l'))
            when is_below(value, censor, getvariable('thrombocytopenia.band_im_caution_10e9_l'))
                then printf('below %g', getvariable('thrombocytopenia.band_im_caution_10e9_l'))
            else printf('below %g', getvariable('thrombocytopenia.below_10e9_l'))
        end as band,
        case
            when is_below(value, censor, getvariable('thrombocytopenia.band_transfusion_10e9_l'))
                then 'band_transfusion'
            when is_below(value, censor, getvariable('thrombocytopenia.band_im_high_risk_10e9_l'))
                then 'band_im_high_risk'
            when is_below(value, censor, getvariable('thrombocytopenia.band_im_caution_10e9_l'))
                then 'band_im_caution'
        end as note_key
    from latest_platelets
),

final as (
    select
        patient_id,
        'thrombocytopenia' as criterion,
        value,
        unit,
        observed_at,
        evidence || '; band ' || band as detail,
        evidence,
        source_file,
        row_number,
        note_key
    from banded
    where is_below(value, censor, rule_limit(getvariable('thrombocytopenia.below_10e9_l'), ref_low))
)

select * from final
