-- Criterion macrocytosis: latest MCV above the limit.
-- With settings.use_lab_reference_range on, the lab's own limit replaces the fixed one.
-- The comparison is lab_limit_flags() (sql/intermediate/lab_limit_flags.sql); source_file/row_number
-- are the result's extract row.
-- Grain: one row per patient meeting it.
-- reads: lab_limit_flags
with final as (
    select * from lab_limit_flags(
        'macrocytosis', 'mcv', above := getvariable('macrocytosis.above_fl')
    )
)

select * from final
