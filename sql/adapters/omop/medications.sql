-- OMOP adapter: DRUG_EXPOSURE as the canonical medications (docs/inputs.md, "OMOP CDM").
-- Grain: one row per DRUG_EXPOSURE row, with its file and row.
-- rxnorm: the CONCEPT code of drug_concept_id when its vocabulary is RxNorm (or RxNorm
-- Extension), else drug_source_value when it is all digits (an RxNorm code as Synthea-made CDMs
-- write it). atc: the code of drug_source_concept_id (or drug_concept_id) when its vocabulary is
-- ATC. medication: drug_source_value when it is not a bare code, else the concept's name.
-- end_date: drug_exposure_end_date, else verbatim_end_date, else the start plus days_supply; an
-- exposure with none of them is open-ended, as an empty canonical end_date (counted in
-- counts.sql).
with exposure as (
    select * from src_drug_exposure
),

concept as (
    select * from omop_concept
),

coded as (
    select
        exposure.*,
        drug.vocabulary_id as drug_vocabulary,
        drug.concept_code as drug_code,
        drug.concept_name as drug_name,
        source_concept.vocabulary_id as source_vocabulary,
        source_concept.concept_code as source_code,
        route.concept_name as route_name
    from exposure
    left join concept as drug on drug.concept_id = exposure.drug_concept_id
    left join concept as source_concept on source_concept.concept_id = exposure.drug_source_concept_id
    left join concept as route on route.concept_id = exposure.route_concept_id
        and trim(exposure.route_concept_id) <> '0'
),

final as (
    select
        _file_id,
        source_file,
        row_number,
        person_id as patient_id,
        case
            when regexp_full_match(trim(drug_source_value), '\d+') then drug_name
            else first_text(drug_source_value, drug_name)
        end as medication,
        case
            when drug_vocabulary in ('RxNorm', 'RxNorm Extension') then drug_code
            when regexp_full_match(trim(drug_source_value), '\d+') then trim(drug_source_value)
        end as rxnorm,
        case
            when source_vocabulary = 'ATC' then source_code
            when drug_vocabulary = 'ATC' then drug_code
        end as atc,
        first_text(drug_exposure_start_date, drug_exposure_start_datetime) as start_date,
        coalesce(
            first_text(drug_exposure_end_date, drug_exposure_end_datetime),
            nullif(trim(verbatim_end_date), ''),
            case
                when try_cast(days_supply as integer) > 0
                    then strftime(try_cast(iso_timestamp(first_text(drug_exposure_start_date,
                        drug_exposure_start_datetime)) as date) + to_days(days_supply::integer), '%Y-%m-%d')
            end
        ) as end_date,
        first_text(route_source_value, route_name) as route
    from coded
)

select * from final
