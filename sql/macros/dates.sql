-- Date helpers.

-- Age in whole years on a given day (a birthday on that day counts).
CREATE OR REPLACE TEMP MACRO age_on(birth_date, on_day) AS
    date_diff('year', birth_date, on_day)
    - (strftime(on_day, '%m%d') < strftime(birth_date, '%m%d'))::INTEGER;
