-- Audit: stored valid results of tests no rule uses (kept, not screened), most frequent first.
-- Counted from the kept profile of the stored results (sql/state/lab_profile.sql).
select
    coalesce(lab_codings.loinc, '') as loinc,
    coalesce(lab_codings.test_name, '') as test_name,
    sum(lab_profile.results)::bigint as results
from lab_profile
inner join lab_codings on lab_codings.coding_id = lab_profile.coding_id
where lab_codings.analyte is null
group by all
order by results desc, loinc, test_name
