-- Audit: medication orders matched to each drug group, and by which code.
select drug_group, count(distinct _rid) as orders, count(distinct patient_id) as patients,
    count(distinct _rid) filter (where matched_by like '%name%') as by_name,
    count(distinct _rid) filter (where matched_by like '%rxnorm%') as by_rxnorm,
    count(distinct _rid) filter (where matched_by like '%atc%') as by_atc
from int_medication_groups
group by drug_group
order by orders desc, drug_group
