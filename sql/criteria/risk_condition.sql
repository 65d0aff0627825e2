-- Criterion risk_condition: a recorded diagnosis that raises the risk of B12 deficiency.
-- source_file/row_number: NULL; every recorded risk condition is listed, no single row decides it.
-- note_key: 'malabsorption' when a condition of parenteral_conditions (pernicious anaemia and
-- the malabsorption after surgery) is among them: oral B12 is not dependable there.
-- Grain: one row per patient meeting it.
-- reads: int_patient_conditions
with conditions as (
    select * from int_patient_conditions
    where list_contains(getvariable('risk_condition.risk_conditions'), condition)
),

final as (
    select
        patient_id,
        'risk_condition' as criterion,
        null::double as value,
        null::varchar as unit,
        min(first_recorded_at)::timestamp as observed_at,
        string_agg(
            printf('%s (%s, %s)', replace(condition, '_', ' '), first_code, first_recorded_at),
            '; ' order by condition
        ) as detail,
        detail as evidence,
        null::varchar as source_file,
        null::bigint as row_number,
        case
            when bool_or(list_contains(getvariable('risk_condition.parenteral_conditions'), condition))
                then 'malabsorption'
        end as note_key
    from conditions
    group by patient_id
)

select * from final
