-- Criterion cytopenia_b12_untested: anemia, leukopenia, neutropenia, thrombocytopenia or
-- macrocytosis, and no B12 and no MMA result within their look-back windows (not tested for
-- B12/MMA: sql/intermediate/tested_within.sql).
-- evidence, source_file/row_number: NULL; the cytopenia flags it combines carry their own, and
-- results that are missing decide the rest.
-- Grain: one row per patient meeting it.
-- reads: anemia, leukopenia, macrocytosis, neutropenia, tested_within, thrombocytopenia
with cytopenia as (
    select patient_id, string_agg(criterion, ', ' order by criterion) as met, max(observed_at) as observed_at
    from run_flags
    where criterion in ('anemia', 'leukopenia', 'neutropenia', 'thrombocytopenia', 'macrocytosis')
    group by patient_id
),

b12_tested as (
    select patient_id
    from tested_within(null)  -- null: in each analyte's own look-back window
    where is_tested
),

final as (
    select
        cytopenia.patient_id,
        'cytopenia_b12_untested' as criterion,
        null::double as value,
        null::varchar as unit,
        cytopenia.observed_at,
        cytopenia.met || '; no B12 or MMA in the look-back' as detail,
        null::varchar as evidence,
        null::varchar as source_file,
        null::bigint as row_number,
        null::varchar as note_key
    from cytopenia
    anti join b12_tested on b12_tested.patient_id = cytopenia.patient_id
)

select * from final
