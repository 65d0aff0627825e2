-- Staging: the coding of this run's lab rows, once per combination of code, test name and unit
-- as written (a few hundred in a night of millions of rows).
-- Grain: one row per distinct (loinc, test_name, unit) spelling of raw_labs.
-- The analyte comes from the LOINC code (rules file) and, when the code is missing or unknown,
-- from the test name (data/lab_test_names.csv or a site's own file); the unit's key and its
-- factor to the analyte's canonical unit from data/lab_units.csv. A unit with no conversion for
-- its analyte leaves factor_to_canonical NULL (the schema quarantines such rows).
-- coding_id is the id of the same coding in the kept dictionary lab_codings when it is there
-- (the same spellings coded the same way), else a new id after the largest stored one; the
-- merge adds the new ones to lab_codings. stg_labs.sql joins the rows to this table.
with spellings as (
    select distinct
        loinc::varchar as loinc_text,
        test_name::varchar as test_name_text,
        unit::varchar as unit_text
    from raw_labs
),

spelled as (
    select
        loinc_text,
        test_name_text,
        unit_text,
        nullif(trim(loinc_text), '') as loinc,
        nullif(trim(test_name_text), '') as test_name,
        unit_key(unit_text) as unit_key
    from spellings
),

coded as (
    select
        spelled.*,
        coalesce(rule_lab_codes.analyte, ref_lab_test_names.analyte) as analyte,
        case
            when rule_lab_codes.analyte is not null then 'loinc'
            when ref_lab_test_names.analyte is not null then 'test_name'
        end as coded_by
    from spelled
    left join rule_lab_codes on rule_lab_codes.loinc = spelled.loinc
    left join ref_lab_test_names
        on ref_lab_test_names.test_name_key = text_key(spelled.test_name)
),

converted as (
    select
        coded.*,
        ref_lab_units.factor_to_canonical,
        rule_analytes.canonical_unit,
        rule_analytes.plausible_low,
        rule_analytes.plausible_high
    from coded
    left join ref_lab_units
        on ref_lab_units.analyte = coded.analyte
        and ref_lab_units.unit_key = coded.unit_key
    left join rule_analytes on rule_analytes.analyte = coded.analyte
),

-- the stored id of the same coding (code, test name, unit as written and what they were coded
-- as), NULLs equal
known as (
    select
        converted.*,
        lab_codings.coding_id as stored_id
    from converted
    left join lab_codings
        on lab_codings.loinc is not distinct from converted.loinc
        and lab_codings.test_name is not distinct from converted.test_name
        and lab_codings.unit_reported is not distinct from converted.unit_text
        and lab_codings.unit_key is not distinct from converted.unit_key
        and lab_codings.analyte is not distinct from converted.analyte
        and lab_codings.coded_by is not distinct from converted.coded_by
        and lab_codings.factor_to_canonical is not distinct from converted.factor_to_canonical
        and lab_codings.canonical_unit is not distinct from converted.canonical_unit
),

-- a new coding's id: after the largest stored one, one per distinct coding (spellings that
-- differ only in spaces around the code or the test name are one coding: dense_rank gives them
-- one number)
final as (
    select
        coalesce(
            stored_id,
            (select coalesce(max(coding_id), 0) from lab_codings)
            + dense_rank() over (
                partition by stored_id is null
                order by loinc, test_name, unit_text, unit_key, analyte, coded_by,
                    factor_to_canonical, canonical_unit
            )
        )::integer as coding_id,
        loinc_text,
        test_name_text,
        unit_text,
        loinc,
        test_name,
        unit_text as unit_reported,
        unit_key,
        analyte,
        coded_by,
        factor_to_canonical,
        canonical_unit,
        plausible_low,
        plausible_high,
        stored_id is null as is_new
    from known
)

select * from final
