-- Criterion anemia: latest hemoglobin below the sex-specific limit (the unknown-sex limit when
-- sex is neither M nor F), or the lab's own lower limit when settings.use_lab_reference_range is on.
-- Grain: one row per patient meeting it.
-- reads: latest_lab, patients
with latest_hgb as (
    select * from latest_lab('hgb')
),

patients as (
    select patient_id, sex from patients
),

with_limit as (
    select
        latest_hgb.*,
        rule_limit(
            case patients.sex
                when 'M' then getvariable('anemia.male_below_g_dl')
                when 'F' then getvariable('anemia.female_below_g_dl')
                else getvariable('anemia.unknown_sex_below_g_dl')
            end,
            latest_hgb.ref_low
        ) as limit_g_dl,
        patients.sex
    from latest_hgb
    inner join patients on patients.patient_id = latest_hgb.patient_id
),

final as (
    select
        patient_id,
        'anemia' as criterion,
        value,
        unit,
        observed_at,
        evidence || printf('; limit %g g/dL (sex %s)', limit_g_dl, sex) as detail,
        evidence,
        source_file,
        row_number,
        null::varchar as note_key
    from with_limit
    where is_below(value, censor, limit_g_dl)
)

select * from final
