-- Criterion b12_lowering_drug: a current order of a drug that lowers B12 (rules list).
-- source_file/row_number: NULL; every current order of the groups counts, no single row decides it.
-- Grain: one row per patient meeting it.
-- reads: therapy_orders
with current_orders as (
    select * from therapy_orders(getvariable('b12_lowering_drug.drug_groups'))
    where is_current
),

final as (
    select
        patient_id,
        'b12_lowering_drug' as criterion,
        null::double as value,
        null::varchar as unit,
        max(start_date)::timestamp as observed_at,
        'current ' || string_agg(distinct replace(drug_group, '_', ' '), ', ' order by replace(drug_group, '_', ' ')) as detail,
        detail as evidence,
        null::varchar as source_file,
        null::bigint as row_number,
        null::varchar as note_key
    from current_orders
    group by patient_id
)

select * from final
