-- Criterion b12_deficient: latest serum B12 below the deficiency limit.
-- With settings.use_lab_reference_range on, the lab's own limit replaces the fixed one.
-- The comparison is lab_limit_flags() (sql/intermediate/lab_limit_flags.sql); source_file/row_number
-- are the result's extract row.
-- Grain: one row per patient meeting it.
-- reads: lab_limit_flags
with final as (
    select * from lab_limit_flags(
        'b12_deficient', 'b12', below := getvariable('b12_deficient.below_pg_ml')
    )
)

select * from final
