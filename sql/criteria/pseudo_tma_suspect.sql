-- Criterion pseudo_tma_suspect: B12 deficiency (b12_deficient or mma_elevated) with anemia,
-- thrombocytopenia and the latest LDH above the limit. B12 deficiency can mimic TTP.
-- Grain: one row per patient meeting it.
-- reads: anemia, b12_deficient, latest_lab, mma_elevated, thrombocytopenia
with deficiency as (
    select distinct patient_id from run_flags
    where criterion in ('b12_deficient', 'mma_elevated')
),

anemia_and_low_platelets as (
    select patient_id from run_flags
    where criterion in ('anemia', 'thrombocytopenia')
    group by patient_id
    having count(distinct criterion) = 2
),

high_ldh as (
    select * from latest_lab('ldh')
    where is_above(value, censor, getvariable('pseudo_tma_suspect.ldh_above_u_l'))
),

final as (
    select
        high_ldh.patient_id,
        'pseudo_tma_suspect' as criterion,
        high_ldh.value,
        high_ldh.unit,
        high_ldh.observed_at,
        high_ldh.evidence || '; with B12 deficiency, anemia and thrombocytopenia' as detail,
        high_ldh.evidence,
        high_ldh.source_file,
        high_ldh.row_number,
        null::varchar as note_key
    from high_ldh
    semi join deficiency on deficiency.patient_id = high_ldh.patient_id
    semi join anemia_and_low_platelets on anemia_and_low_platelets.patient_id = high_ldh.patient_id
)

select * from final
