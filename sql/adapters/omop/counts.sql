-- OMOP adapter: what each mapping recognised, for the audit and run.json (counts only).
-- Grain: one row per kind and item.
select 'patients' as kind, 'PERSON rows' as item, count(*) as n from src_person
union all
select 'patients', 'PERSON rows with a DEATH row', count(*) from raw_patients where death_date is not null
union all
select 'labs', 'MEASUREMENT rows', count(*) from src_measurement
union all
select 'labs', 'MEASUREMENT rows with a LOINC code (CONCEPT or source value)', count(*) from raw_labs where loinc is not null
union all
select 'labs', 'MEASUREMENT rows with unit_concept_id 0 (no matching concept) and no unit_source_value', count(*)
from src_measurement where trim(unit_concept_id) = '0' and nullif(trim(unit_source_value), '') is null
union all
select 'labs', 'MEASUREMENT rows censored by operator_concept_id (<, <=, >=, >)', count(*)
from src_measurement where trim(operator_concept_id) in ('4171756', '4171754', '4171755', '4172704')
union all
select 'medications', 'DRUG_EXPOSURE rows', count(*) from src_drug_exposure
union all
select 'medications', 'DRUG_EXPOSURE rows with an RxNorm code', count(*) from raw_medications where rxnorm is not null
union all
select 'medications', 'DRUG_EXPOSURE rows with no end date or days_supply (open-ended)', count(*)
from raw_medications where end_date is null
union all
select 'diagnoses', 'CONDITION_OCCURRENCE rows coded by ' || coalesce(code_system, 'no code'), count(*)
from raw_diagnoses group by all
union all
select 'lookups', 'CONCEPT rows', count(*) from src_concept
order by kind, item
