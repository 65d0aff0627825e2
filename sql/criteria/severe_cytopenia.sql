-- Criterion severe_cytopenia: the latest platelet count below the transfusion band, or the
-- latest absolute neutrophil count below the lowest (severe) neutropenia grade, whatever the
-- B12 status: same-day review. Both limits are the ones thrombocytopenia and neutropenia
-- grade by (rules file), fixed limits: the lab's own range never moves a band or a grade.
-- value/unit/observed_at and source_file/row_number: the platelet result when the platelets
-- meet it, else the ANC result; evidence names every result that meets it.
-- Grain: one row per patient meeting it.
-- reads: latest_lab
with latest_platelets as (
    select * from latest_lab('platelets')
    where is_below(value, censor, getvariable('thrombocytopenia.band_transfusion_10e9_l'))
),

latest_anc as (
    select * from latest_lab('anc')
    where is_below(value, censor, getvariable('neutropenia.severe_below_10e9_l'))
),

met as (
    select
        coalesce(latest_platelets.patient_id, latest_anc.patient_id) as patient_id,
        coalesce(latest_platelets.value, latest_anc.value) as value,
        coalesce(latest_platelets.unit, latest_anc.unit) as unit,
        coalesce(latest_platelets.observed_at, latest_anc.observed_at) as observed_at,
        concat_ws('; ', latest_platelets.evidence, latest_anc.evidence) as evidence,
        case when latest_platelets.patient_id is not null
            then latest_platelets.source_file else latest_anc.source_file end as source_file,
        case when latest_platelets.patient_id is not null
            then latest_platelets.row_number else latest_anc.row_number end as row_number
    from latest_platelets
    full outer join latest_anc on latest_anc.patient_id = latest_platelets.patient_id
),

final as (
    select
        patient_id,
        'severe_cytopenia' as criterion,
        value,
        unit,
        observed_at,
        evidence || printf('; platelets below %g or ANC below %g x10^9/L',
            getvariable('thrombocytopenia.band_transfusion_10e9_l'),
            getvariable('neutropenia.severe_below_10e9_l')) as detail,
        evidence,
        source_file,
        row_number,
        null::varchar as note_key
    from met
)

select * from final
