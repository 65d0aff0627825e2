-- Measure pseudo_tma_suspected: of the deficient patients, how many meet pseudo_tma_suspect
-- (anaemia, low platelets and a high LDH with B12 deficiency, which can mimic TTP).
-- Grain: one row per patient in the denominator.
-- reads: deficient_patients, flags
with deficiency as (
    select * from deficient_patients()
),

suspects as (
    select distinct patient_id from run_flags where criterion = 'pseudo_tma_suspect'
),

final as (
    select
        deficiency.patient_id,
        suspects.patient_id is not null as in_numerator,
        deficiency.deficient_on as event_date
    from deficiency
    left join suspects on suspects.patient_id = deficiency.patient_id
)

select * from final
