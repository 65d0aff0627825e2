-- Intermediate: medication orders recognised as a drug group (data/drug_codes.csv).
-- Grain: one row per valid medication order and drug group it belongs to (a combination
-- product gives one row per group). An order is recognised by its RxNorm code, its ATC code,
-- or a listed name appearing as whole words in its text ('MetFORMIN (Glucophage) 500 mg');
-- words are runs of letters (any alphabet) and digits.
-- covered_until: the last day the order covers. An order of B12 therapy
-- (settings.b12_therapy_groups) that starts and ends on the same day records one dose (an
-- injection): it covers settings.single_dose_cover_days days from that day, up to when the next
-- maintenance dose falls due. Any other order covers up to its end_date (NULL: open-ended).
-- mapping: the file(s) whose rows recognised it (data/drug_codes.csv, or the site's own).
-- reads: medications, ref_drug_codes
with orders as (
    select _rid, patient_id, medication, rxnorm, atc, start_date, end_date, route
    from medications
),

drug_codes as (
    select drug_group, code_system, code_key, mapping from ref_drug_codes
),

words as (
    select _rid, list_filter(string_split_regex(lower(medication), '[^\p{L}\p{N}]+'), lambda x: x <> '') as w
    from orders
    where medication is not null
),

-- every run of one to three consecutive words of the medication text
word_runs as (
    select _rid, array_to_string(list_slice(w, i, i + n - 1), ' ') as run
    from (
        select _rid, w, n, unnest(range(1, len(w) - n + 2)) as i
        from words cross join (values (1), (2), (3)) as sizes (n)
    )
),

matches as (
    select word_runs._rid, drug_codes.drug_group, 'name' as matched_by, drug_codes.mapping
    from word_runs
    inner join drug_codes on drug_codes.code_system = 'name' and drug_codes.code_key = word_runs.run
    union all
    select orders._rid, drug_codes.drug_group, 'rxnorm' as matched_by, drug_codes.mapping
    from orders
    inner join drug_codes on drug_codes.code_system = 'rxnorm' and drug_codes.code_key = orders.rxnorm
    union all
    select orders._rid, drug_codes.drug_group, 'atc' as matched_by, drug_codes.mapping
    from orders
    inner join drug_codes on drug_codes.code_system = 'atc' and drug_codes.code_key = orders.atc
),

final as (
    select
        orders.*,
        matched.drug_group,
        matched.matched_by,
        matched.mapping,
        case
            when orders.end_date = orders.start_date
                and list_contains(getvariable('settings.b12_therapy_groups'), matched.drug_group)
                then orders.start_date
                    + (getvariable('settings.single_dose_cover_days')::integer - 1)
            else orders.end_date
        end as covered_until
    from orders
    inner join (
        select
            _rid,
            drug_group,
            string_agg(distinct matched_by, ',' order by matched_by) as matched_by,
            string_agg(distinct mapping, ',' order by mapping) as mapping
        from matches
        group by _rid, drug_group
    ) as matched on matched._rid = orders._rid
)

select * from final
