-- Criterion b12_lowering_drug: a current order of a drug that lowers B12 (rules list).
-- Grain: one row per patient meeting it.
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
        detail as evidence
    from current_orders
    group by patient_id
)

select * from final
