-- Audit: stored valid results per analyte and reported unit, with the factor to canonical.
select analyte, coalesce(unit_key, '(none)') as unit, factor_to_canonical as factor,
    count(*) as results
from lab_results
where analyte is not null
group by all
order by analyte, results desc
