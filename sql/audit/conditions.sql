-- Audit: patients with each risk condition recognised from their diagnoses.
select condition, count(*) as patients
from int_patient_conditions
group by all
order by patients desc, condition
