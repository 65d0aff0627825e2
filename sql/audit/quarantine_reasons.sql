-- Audit: rows quarantined this run, by kind, source file and reason.
select kind, source_file, reason, count(*) as rows
from quarantine
group by all
order by kind, source_file, rows desc, reason
