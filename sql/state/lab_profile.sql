-- State: the profile of the stored valid lab results (the kept table lab_profile,
-- pipeline/store/profile.py). The audit's lab tables (sql/audit/analytes.sql,
-- unit_conversions.sql, value_distributions.sql, unmapped_tests.sql) describe every stored
-- result: how many per analyte and how each was recognised, per reported unit, the
-- distribution of the canonical values, the tests no rule uses. All of them are counts over
-- the coding of a result (lab_codings: code, test name, unit and what they were coded as), its
-- canonical value and whether it was censored, so the database keeps those counts and a night
-- adds its own rows to them and takes off the rows it replaced, instead of the audit reading
-- the whole history every run.
-- Grain: one row per coding, canonical value and censoring, over the rows of
-- lab_profile_source (all of lab_rows when the profile is built; tonight's stored rows, or the
-- stored rows a correction replaced, when it is kept up to date).
select
    coding_id,
    value_canonical,
    censor is not null as censored,
    count(*) as results
from lab_profile_source
group by all
