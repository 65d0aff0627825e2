-- Criterion pancytopenia: anemia, leukopenia and thrombocytopenia all met in this run.
-- evidence, source_file/row_number: NULL; the flags it combines carry their own.
-- Grain: one row per patient meeting it.
-- reads: anemia, leukopenia, thrombocytopenia
with cytopenias as (
    select patient_id, criterion, observed_at
    from run_flags
    where criterion in ('anemia', 'leukopenia', 'thrombocytopenia')
),

final as (
    select
        patient_id,
        'pancytopenia' as criterion,
        null::double as value,
        null::varchar as unit,
        max(observed_at) as observed_at,
        'anemia, leukopenia and thrombocytopenia' as detail,
        null::varchar as evidence,
        null::varchar as source_file,
        null::bigint as row_number,
        null::varchar as note_key
    from cytopenias
    group by patient_id
    having count(distinct criterion) = 3
)

select * from final
