-- Audit: stored valid results of tests no rule uses (kept, not screened), most frequent first.
select coalesce(loinc, '') as loinc, coalesce(test_name, '') as test_name, count(*) as results
from lab_results
where analyte is null
group by all
order by results desc, loinc, test_name
