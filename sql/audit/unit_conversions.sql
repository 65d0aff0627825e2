-- Audit: stored valid results per analyte and reported unit, with the factor to canonical.
-- Counted from the kept profile of the stored results (sql/state/lab_profile.sql).
select
    lab_codings.analyte,
    coalesce(lab_codings.unit_key, '(none)') as unit,
    lab_codings.factor_to_canonical as factor,
    sum(lab_profile.results)::bigint as results
from lab_profile
inner join lab_codings on lab_codings.coding_id = lab_profile.coding_id
where lab_codings.analyte is not null
group by all
order by analyte, results desc
