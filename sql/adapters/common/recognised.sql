-- Every format: the stored valid rows each mapping recognised, for run.json input_format and the
-- audit's input-format table (counts only). A mapping is the rules file's LOINC lists, a shipped
-- table (data/<table>.csv) or a site's own file (site <file>, rules profile [mappings]).
-- Grain: one row per kind and mapping; a row two mappings recognise counts under each.
-- Lab results keep the analyte they were given when read; medications and diagnoses are
-- matched again at every run (sql/intermediate).
-- lab results counted once per spelling of the test name (hundreds), then keyed; the counts come
-- from the kept profile of the stored results (sql/state/lab_profile.sql: results per coding),
-- as the audit's lab tables do, not from a scan of the whole history every run (1 s a night
-- at 50M stored results)
with spellings as (
    select lab_codings.coded_by, lab_codings.test_name, sum(lab_profile.results) as n
    from lab_profile
    inner join lab_codings on lab_codings.coding_id = lab_profile.coding_id
    group by all
),

labs as (
    select coded_by, text_key(test_name) as test_name_key, n from spellings
),

lab_names as (
    select distinct test_name_key, mapping from ref_lab_test_names
),

by_lab_mapping as (
    select 'labs' as kind, 'LOINC code (rules file analytes)' as mapping, coalesce(sum(n), 0) as n
    from labs where coded_by = 'loinc'
    union all
    select 'labs', lab_names.mapping, sum(labs.n)
    from labs inner join lab_names on lab_names.test_name_key = labs.test_name_key
    where labs.coded_by = 'test_name'
    group by all
    union all
    select 'labs', 'none (a test no rule uses)', coalesce(sum(n), 0) from labs where coded_by is null
),

orders as (
    select distinct _rid, unnest(string_split(mapping, ',')) as mapping from int_medication_groups
),

by_drug_mapping as (
    select 'medications' as kind, mapping, count(distinct _rid) as n from orders group by all
    union all
    select 'medications', 'none (a drug on no list)', count(*)
    from medications anti join int_medication_groups using (_rid)
),

diagnoses as (
    select _rid, code_key, coalesce(code_system, 'icd10') as code_system from diagnoses
),

diagnosis_matches as (
    select diagnoses._rid, ref.mapping
    from diagnoses
    inner join ref_diagnosis_codes as ref
        on starts_with(diagnoses.code_key, upper(replace(trim(ref.code), '.', '')))
    where diagnoses.code_system = 'icd10'
    union all
    select diagnoses._rid, ref.mapping
    from diagnoses
    inner join ref_diagnosis_codes_snomed as ref on ref.code = diagnoses.code_key
    where diagnoses.code_system = 'snomed'
),

by_diagnosis_mapping as (
    select 'diagnoses' as kind, mapping, count(distinct _rid) as n from diagnosis_matches group by all
    union all
    select 'diagnoses', 'none (a code on no condition list)', count(*)
    from diagnoses anti join diagnosis_matches using (_rid)
),

-- every mapping file is listed, also one that recognised nothing
mappings as (
    select distinct 'labs' as kind, mapping from ref_lab_test_names
    union
    select distinct 'medications', mapping from ref_drug_codes
    union
    select distinct 'diagnoses', mapping from ref_diagnosis_codes
    union
    select distinct 'diagnoses', mapping from ref_diagnosis_codes_snomed
),

counted as (
    select kind, mapping, n from by_lab_mapping
    union all
    select kind, mapping, n from by_drug_mapping
    union all
    select kind, mapping, n from by_diagnosis_mapping
),

final as (
    select kind, mapping, coalesce(counted.n, 0) as n
    from counted full join mappings using (kind, mapping)
)

select * from final
order by kind, mapping like 'none%', mapping
