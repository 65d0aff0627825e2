-- Audit: stored valid results per analyte, and how they were recognised.
select a.analyte, a.label, a.canonical_unit, a.lookback_days,
    count(l._rid) as results, count(distinct l.patient_id) as patients,
    count(*) filter (where l.coded_by = 'loinc') as by_loinc,
    count(*) filter (where l.coded_by = 'test_name') as by_name,
    count(*) filter (where l.censor is not null) as censored
from rule_analytes as a
left join lab_results as l on l.analyte = a.analyte
group by all
order by results desc, a.analyte
