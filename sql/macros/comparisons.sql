-- Threshold comparisons that respect censored results. A result reported as '<150' only says
-- the true value is below 150; a rule is met only when that is certain:
--   '<X' is below T when X <= T; '<=X' when X < T; neither is ever certainly above anything;
--   '>X' is above T when X >= T; '>=X' when X > T; neither is ever certainly below anything.
CREATE OR REPLACE TEMP MACRO is_below(v, censor, lim) AS CASE
    WHEN censor IN ('>', '>=') THEN false
    WHEN censor = '<' THEN v <= lim
    ELSE v < lim
END;

CREATE OR REPLACE TEMP MACRO is_above(v, censor, lim) AS CASE
    WHEN censor IN ('<', '<=') THEN false
    WHEN censor = '>' THEN v >= lim
    ELSE v > lim
END;

-- Certainly at or below T (for closed ranges such as the indeterminate B12 band).
CREATE OR REPLACE TEMP MACRO is_at_most(v, censor, lim) AS CASE
    WHEN censor IN ('>', '>=') THEN false
    ELSE v <= lim
END;

-- The human-readable evidence for one lab result: value and unit in canonical form, rounded
-- (half away from zero) to the decimals a lab reports the analyte with ([analytes] in the rules
-- file: report_decimals), the date, and what the lab reported when it was in another unit. A
-- value reported in the canonical unit keeps the decimals it was reported with when it has more
-- (179.5 pg/mL stays 179.5, so the text never crosses the limit the rule compared): the caller
-- passes shown_decimals(...) (sql/macros/parsing.sql), and whether the result was reported in
-- the canonical unit (in_canonical_unit, as there). The rules compare the unrounded value.
CREATE OR REPLACE TEMP MACRO lab_evidence(label, censor, v, unit, taken_at, reported_value, reported_unit, in_canonical_unit, decimals) AS
    label || ' ' || coalesce(censor, '')
    || format('{:.{}f}', round(v::DOUBLE, decimals::INTEGER), decimals::INTEGER) || ' ' || unit
    || ' on ' || strftime(taken_at, '%Y-%m-%d')
    || CASE
        WHEN NOT in_canonical_unit
        THEN ' (reported ' || trim(reported_value::VARCHAR) || ' ' || coalesce(trim(reported_unit), '') || ')'
        ELSE ''
    END;

-- The limit a "below" or "above" rule compares with: the rules file's fixed limit, or the
-- reporting lab's own limit for that result when settings.use_lab_reference_range is on and
-- the extract carried one.
CREATE OR REPLACE TEMP MACRO rule_limit(fixed, lab_limit) AS CASE
    WHEN getvariable('settings.use_lab_reference_range') AND lab_limit IS NOT NULL THEN lab_limit
    ELSE fixed
END;

-- What a flag's detail says about the limit when it came from the lab's own range.
CREATE OR REPLACE TEMP MACRO limit_note(fixed, lab_limit) AS CASE
    WHEN getvariable('settings.use_lab_reference_range') AND lab_limit IS NOT NULL
        THEN printf('; limit from the lab''s range: %g', lab_limit)
    ELSE ''
END;
