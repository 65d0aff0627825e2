-- Audit: stored medication orders of drugs on no list (kept, not screened; not errors).
select coalesce(text_key(medication), '(no name)') as medication, count(*) as orders
from medications
anti join int_medication_groups using (_rid)
group by all
order by orders desc, medication
