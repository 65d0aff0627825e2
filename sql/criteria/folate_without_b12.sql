-- Criterion folate_without_b12 (safety): B12 deficiency (b12_deficient or mma_elevated), folic
-- acid current, and for some deficient result no B12 therapy that is current or started since
-- therapy_lookback_days before it. Each deficient result is judged on its own (an older one
-- cannot excuse a newer one); the row shows the most recent result that meets it (on a tie,
-- the B12 before the MMA), and source_file/row_number are that result's extract row.
-- Grain: one row per patient meeting it.
-- reads: deficient_results, therapy_orders
with deficiency as (
    select * from deficient_results()
),

folic_acid as (
    select patient_id, min(start_date) as since
    from therapy_orders(getvariable('folate_without_b12.folate_groups'))
    where is_current
    group by patient_id
),

therapy as (
    select * from therapy_orders(getvariable('folate_without_b12.therapy_groups'))
),

unaddressed as (
    select
        deficiency.patient_id, deficiency.found_by, deficiency.deficient_on, deficiency.source_file,
        deficiency.row_number, folic_acid.since
    from deficiency
    inner join folic_acid on folic_acid.patient_id = deficiency.patient_id
    where not exists (
        select 1 from therapy
        where therapy.patient_id = deficiency.patient_id
            and (
                therapy.is_current
                or therapy.start_date >= deficiency.deficient_on
                    - getvariable('folate_without_b12.therapy_lookback_days')::integer
            )
    )
),

most_recent as (
    select * from unaddressed
    qualify row_number() over (partition by patient_id order by deficient_on desc, found_by) = 1
),

final as (
    select
        patient_id,
        'folate_without_b12' as criterion,
        null::double as value,
        null::varchar as unit,
        deficient_on::timestamp as observed_at,
        printf('folic acid current since %s; deficient B12 or MMA result on %s; no B12 therapy',
            since, deficient_on) as detail,
        detail as evidence,
        source_file,
        row_number,
        null::varchar as note_key
    from most_recent
)

select * from final
