-- OMOP adapter: CONDITION_OCCURRENCE as the canonical diagnoses (docs/inputs.md, "OMOP CDM").
-- Grain: one row per CONDITION_OCCURRENCE row, with its file and row.
-- The code, first that applies: condition_source_concept_id's code when its vocabulary is
-- ICD10CM or ICD10 (code_system icd10); condition_concept_id's code when it is SNOMED (snomed);
-- condition_source_value as written (all digits: snomed, else icd10). A SNOMED concept that is
-- not itself on a risk-condition list but descends (CONCEPT_ANCESTOR, when the folder has it)
-- from one that is reads as its nearest listed ancestor's code, so 'pernicious anaemia of
-- pregnancy' counts as pernicious anaemia; its own name stays the description.
-- recorded_at: condition_start_date. description: the concept's name.
with occurrence as (
    select * from src_condition_occurrence
),

concept as (
    select * from omop_concept
),

listed as (
    select code from ref_diagnosis_codes_snomed
),

listed_ancestors as (
    select
        ancestry.descendant_concept_id,
        arg_min(ancestor.concept_code, try_cast(ancestry.min_levels_of_separation as integer)) as code
    from src_concept_ancestor as ancestry
    inner join concept as ancestor on ancestor.concept_id = ancestry.ancestor_concept_id
    where ancestor.vocabulary_id = 'SNOMED' and ancestor.concept_code in (select code from listed)
    group by ancestry.descendant_concept_id
),

coded as (
    select
        occurrence.*,
        case
            when source_concept.vocabulary_id in ('ICD10CM', 'ICD10') then source_concept.concept_code
        end as icd10,
        case
            when standard.vocabulary_id <> 'SNOMED' then null
            when standard.concept_code in (select code from listed) then standard.concept_code
            else coalesce(listed_ancestors.code, standard.concept_code)
        end as snomed,
        coalesce(standard.concept_name, source_concept.concept_name) as concept_name
    from occurrence
    left join concept as standard on standard.concept_id = occurrence.condition_concept_id
    left join concept as source_concept
        on source_concept.concept_id = occurrence.condition_source_concept_id
    left join listed_ancestors
        on listed_ancestors.descendant_concept_id = occurrence.condition_concept_id
),

final as (
    select
        _file_id,
        source_file,
        row_number,
        person_id as patient_id,
        coalesce(icd10, snomed, nullif(trim(condition_source_value), '')) as code,
        case
            when icd10 is not null then 'icd10'
            when snomed is not null then 'snomed'
            when regexp_full_match(trim(condition_source_value), '\d+') then 'snomed'
            when nullif(trim(condition_source_value), '') is not null then 'icd10'
        end as code_system,
        first_text(condition_start_date, condition_start_datetime) as recorded_at,
        concept_name as description
    from coded
)

select * from final
