-- Parsing helpers shared by the staging models. Each macro is pure: text in, typed value out,
-- NULL when the text cannot be read (the row is then quarantined by the pandera schemas).

-- A unit spelling reduced to one key, so 'x10^9/L', '10*9/L', '10E9/L' and '10⁹/L' all read
-- '10^9/l', and 'µmol/L', 'μmol/L' and 'umol/L' all read 'umol/l'. data/lab_units.csv is keyed
-- on this form.
CREATE OR REPLACE TEMP MACRO _unit_plain(u) AS
    replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
        lower(trim(u::VARCHAR)),
        'µ', 'u'), 'μ', 'u'), 'mcg', 'ug'), ' ', ''), '⁹', '^9'), '⁶', '^6'), 'm³', 'm3'),
        '³', '^3'), '²', '2'), '{', ''), '}', '');

CREATE OR REPLACE TEMP MACRO unit_key(u) AS nullif(
    regexp_replace(regexp_replace(regexp_replace(regexp_replace(
        _unit_plain(u),
        '^(x|×)', ''),           -- 'x10^9/L' -> '10^9/l'
        '\*', '^', 'g'),        -- '10*9/L'  -> '10^9/l'
        '10e', '10^', 'g'),      -- '10E9/L'  -> '10^9/l'
        '_', '', 'g'),           -- '{1.73_m2}' -> '1.73m2'
    '');

-- The censoring mark of a reported value: '<' for '<150', '<=' for '<=150', '>' for '>2000',
-- '>=' for '>=2000', else NULL.
CREATE OR REPLACE TEMP MACRO value_censor(v) AS CASE
    WHEN trim(v::VARCHAR) LIKE '<=%' THEN '<='
    WHEN trim(v::VARCHAR) LIKE '<%' THEN '<'
    WHEN trim(v::VARCHAR) LIKE '>=%' THEN '>='
    WHEN trim(v::VARCHAR) LIKE '>%' THEN '>'
END;

-- The number in a reported value: '154', '154.0', '<150', '>2000', '1,200' (a comma only as a
-- thousands separator: '4,5' is not read as 45 but as unparseable).
CREATE OR REPLACE TEMP MACRO _value_text(v) AS CASE
    WHEN trim(v::VARCHAR)[1] IN ('<', '>') THEN regexp_replace(trim(v::VARCHAR), '^[<>]=?\s*', '')
    ELSE trim(v::VARCHAR)
END;

-- A number, or NULL when it is not finite ('1e309' reads as infinity).
CREATE OR REPLACE TEMP MACRO finite_or_null(x) AS CASE WHEN isfinite(x) THEN x END;

-- (the plain-number pattern is tried first: it is by far the most common and the cheapest;
-- a number too large for a double, such as '1e309', is not a number)
CREATE OR REPLACE TEMP MACRO value_number(v) AS finite_or_null(CASE
    WHEN regexp_full_match(_value_text(v), '-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?')
        THEN _value_text(v)::DOUBLE
    WHEN contains(_value_text(v), ',')
        AND regexp_full_match(_value_text(v), '-?\d{1,3}(,\d{3})+(\.\d+)?')
        THEN replace(_value_text(v), ',', '')::DOUBLE
END);

-- A date or date-time in ISO 8601 ('2026-11-01', '2026-11-01 08:30', '2026-11-01T08:30:00Z').
-- A time with a UTC offset ('Z', '+02:00') is converted to UTC (runs set TimeZone = 'UTC');
-- one without is taken as written. Only the years 1000 to 9999 are dates here (four digits,
-- as ISO 8601 writes them without an agreement): DuckDB also reads '10000-01-01' and years
-- BC, which no record can mean and which no report could show.
CREATE OR REPLACE TEMP MACRO _iso_timestamp(v) AS CASE
    WHEN typeof(v) IN ('TIMESTAMP', 'DATE') THEN TRY_CAST(v AS TIMESTAMP)  -- typed Parquet
    WHEN regexp_matches(trim(v::VARCHAR), '\d[T ]\d.*(Z|[+-]\d\d(:?\d\d)?)$')
        THEN TRY_CAST(TRY_CAST(trim(v::VARCHAR) AS TIMESTAMPTZ) AS TIMESTAMP)
    ELSE TRY_CAST(v AS TIMESTAMP)
END;

CREATE OR REPLACE TEMP MACRO iso_timestamp(v) AS CASE
    WHEN _iso_timestamp(v) >= TIMESTAMP '1000-01-01'
        AND _iso_timestamp(v) < TIMESTAMP '10000-01-01' THEN _iso_timestamp(v)
END;

-- Sex as M, F or U: 'M'/'male' and 'F'/'female' in any case; anything else is unknown.
CREATE OR REPLACE TEMP MACRO sex_code(v) AS CASE lower(trim(v::VARCHAR))
    WHEN 'm' THEN 'M' WHEN 'male' THEN 'M'
    WHEN 'f' THEN 'F' WHEN 'female' THEN 'F'
    ELSE 'U'
END;

-- A free-text key: lower case, single spaces, trimmed (test names, drug names).
CREATE OR REPLACE TEMP MACRO text_key(v) AS nullif(lower(trim(regexp_replace(v::VARCHAR, '\s+', ' ', 'g'))), '');

-- The decimals to show a lab value with: the analyte's reporting decimals, or more when the
-- value was reported in the canonical unit with more (sql/macros/comparisons.sql lab_evidence).
-- in_canonical_unit: unit_key(reported unit) IS NOT DISTINCT FROM unit_key(canonical unit),
-- worked out once per pair of units by the caller (sql/intermediate/int_latest_labs.sql).
CREATE OR REPLACE TEMP MACRO shown_decimals(reported_value, in_canonical_unit, decimals) AS CASE
    WHEN in_canonical_unit
        THEN greatest(decimals::INTEGER,
            coalesce(length(regexp_extract(trim(reported_value::VARCHAR), '\.(\d+)$', 1)), 0))
    ELSE decimals::INTEGER
END;
