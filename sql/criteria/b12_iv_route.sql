-- Criterion b12_iv_route: B12 therapy is current (settings.b12_therapy_groups, orders as
-- therapy_orders() reads them) and every current order of it is by an intravenous route
-- (iv_routes, compared as lower-case text with single spaces); an order without a route is
-- not taken as IV. Most of an IV dose is lost in the urine.
-- source_file/row_number: NULL; every current order decides it together.
-- Grain: one row per patient meeting it.
-- reads: therapy_orders
with current_orders as (
    select
        patient_id,
        drug_group,
        start_date,
        coalesce(list_contains(getvariable('b12_iv_route.iv_routes'), text_key(route)), false)
            as is_iv
    from therapy_orders(getvariable('settings.b12_therapy_groups'))
    where is_current
),

iv_only as (
    select
        patient_id,
        min(start_date) as since,
        string_agg(distinct drug_group, ', ' order by drug_group) as drugs
    from current_orders
    group by patient_id
    having bool_and(is_iv)
),

final as (
    select
        patient_id,
        'b12_iv_route' as criterion,
        null::double as value,
        null::varchar as unit,
        since::timestamp as observed_at,
        printf('%s current by IV only, since %s', drugs, since) as detail,
        detail as evidence,
        null::varchar as source_file,
        null::bigint as row_number,
        null::varchar as note_key
    from iv_only
)

select * from final
