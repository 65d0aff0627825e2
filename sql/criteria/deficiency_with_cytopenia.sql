-- Criterion deficiency_with_cytopenia: B12 deficiency (b12_deficient or mma_elevated) with any
-- of anemia, leukopenia, neutropenia or thrombocytopenia. Treat now; do not wait for more tests.
-- evidence, source_file/row_number: NULL; the flags it combines carry their own.
-- Grain: one row per patient meeting it.
-- reads: anemia, b12_deficient, leukopenia, mma_elevated, neutropenia, thrombocytopenia
with deficiency as (
    select patient_id, string_agg(criterion, ' + ' order by criterion) as met, max(observed_at) as observed_at
    from run_flags
    where criterion in ('b12_deficient', 'mma_elevated')
    group by patient_id
),

cytopenia as (
    select patient_id, string_agg(criterion, ', ' order by criterion) as met, max(observed_at) as observed_at
    from run_flags
    where criterion in ('anemia', 'leukopenia', 'neutropenia', 'thrombocytopenia')
    group by patient_id
),

final as (
    select
        deficiency.patient_id,
        'deficiency_with_cytopenia' as criterion,
        null::double as value,
        null::varchar as unit,
        greatest(deficiency.observed_at, cytopenia.observed_at) as observed_at,
        deficiency.met || ' with ' || cytopenia.met as detail,
        null::varchar as evidence,
        null::varchar as source_file,
        null::bigint as row_number,
        null::varchar as note_key
    from deficiency
    inner join cytopenia on cytopenia.patient_id = deficiency.patient_id
)

select * from final
