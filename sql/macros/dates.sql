-- Date helpers.

-- Age in whole years on a given day (a birthday on that day counts).
CREATE OR REPLACE TEMP MACRO age_on(birth_date, on_day) AS
    date_diff('year', birth_date, on_day)
    - (strftime(on_day, '%m%d') < strftime(birth_date, '%m%d'))::INTEGER;

-- A patient younger than the rules file's minimum age (settings.minimum_age) on the as-of date:
-- not screened (adult limits do not apply to children); the audit counts them.
CREATE OR REPLACE TEMP MACRO below_minimum_age(birth_date) AS
    age_on(birth_date, getvariable('run.as_of')::DATE) < getvariable('settings.minimum_age');

-- A patient who died on or before the as-of date (patients.death_date): not screened, never on a
-- worklist; the audit counts them. A death after the as-of date (a backfill run) does not count.
CREATE OR REPLACE TEMP MACRO deceased_by_as_of(death_date) AS
    coalesce(death_date <= getvariable('run.as_of')::DATE, false);
