-- Criterion b12_deficient: latest serum B12 below the deficiency limit.
-- With settings.use_lab_reference_range on, the lab's own limit replaces the fixed one.
-- The comparison is lab_limit_flags() (sql/intermediate/lab_limit_flags.sql); source_file/row_number
-- are the result's extract row.
-- note_key: 'on_therapy' when B12 therapy is current (on_b12_therapy(),
-- sql/intermediate/drug_exposure.sql), so the worklist asks to review adherence, route and
-- dose rather than to start a course.
-- Grain: one row per patient meeting it.
-- reads: lab_limit_flags, on_b12_therapy
with flags as (
    select * from lab_limit_flags(
        'b12_deficient', 'b12', below := getvariable('b12_deficient.below_pg_ml')
    )
),

on_therapy as (
    select patient_id from on_b12_therapy()
),

final as (
    select
        flags.* replace (
            case when on_therapy.patient_id is not null then 'on_therapy' end::varchar as note_key
        )
    from flags
    left join on_therapy on on_therapy.patient_id = flags.patient_id
)

select * from final
