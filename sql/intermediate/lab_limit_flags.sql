-- lab_limit_flags(criterion, analyte, below := limit | above := limit): the flags of a
-- single-analyte lab criterion, in the flag layout (pipeline/screening/criteria.py): the latest
-- valid result of the analyte in its look-back (latest_lab()) compared with the limit the
-- criterion passes from the rules file, certainly below it (`below :=`) or certainly above it
-- (`above :=`), censored results counted only when certain (sql/macros/comparisons.sql). With
-- settings.use_lab_reference_range on, the reporting lab's own lower (below) or upper (above)
-- limit replaces the fixed one, and the detail says so. evidence: the result as the lab
-- reported it; source_file/row_number: its extract row.
-- A criterion file names its own id and reads its own limit with getvariable(), so the rules
-- check at start-up sees every value each criterion reads. Give exactly one of below, above.
-- A table macro over latest_lab(), created right after it.
-- Grain: one row per patient whose latest result of the analyte meets the criterion.
-- reads: latest_lab
CREATE OR REPLACE TEMP MACRO lab_limit_flags(criterion_id, analyte_id, below := NULL, above := NULL) AS TABLE
    with latest as (
        select * from latest_lab(analyte_id)
    ),

    compared as (
        select
            *,
            case
                when below is not null and above is null
                    then is_below(value, censor, rule_limit(below, ref_low))
                when above is not null and below is null
                    then is_above(value, censor, rule_limit(above, ref_high))
                else error('lab_limit_flags(' || criterion_id || '): give exactly one of below, above')
            end as is_met,
            case
                when below is not null then limit_note(below, ref_low)
                else limit_note(above, ref_high)
            end as limit_note
        from latest
    ),

    final as (
        select
            patient_id,
            criterion_id as criterion,
            value,
            unit,
            observed_at,
            evidence || limit_note as detail,
            evidence,
            source_file,
            row_number,
            null::varchar as note_key
        from compared
        where is_met
    )

    select * from final;
