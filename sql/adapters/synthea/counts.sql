-- Synthea adapter: what each mapping recognised, for the audit and run.json (counts only).
-- Grain: one row per kind and item.
select 'patients' as kind, 'patients.csv rows' as item, count(*) as n from src_patients
union all
select 'patients', 'patients with a DEATHDATE', count(*) from raw_patients where death_date is not null
union all
select 'labs', 'observations.csv rows', count(*) from src_observations
union all
select 'labs', 'left out: observations not in the laboratory category', count(*)
from src_observations where category is not null and lower(trim(category)) <> 'laboratory'
union all
select 'medications', 'medications without STOP (open-ended)', count(*)
from raw_medications where end_date is null
union all
select 'diagnoses', 'conditions coded by ' || code_system, count(*) from raw_diagnoses group by all
order by kind, item
