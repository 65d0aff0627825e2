-- latest_lab('b12'): the latest result of one analyte per patient, in the shape every lab
-- criterion starts from. A table macro over int_latest_labs, created right after that table.
-- reads: int_latest_labs
CREATE OR REPLACE TEMP MACRO latest_lab(wanted) AS TABLE
    select
        patient_id,
        value_canonical as value,
        censor,
        canonical_unit as unit,
        reference_low_canonical as ref_low,
        reference_high_canonical as ref_high,
        collected_at as observed_at,
        lab_evidence(
            label, censor, value_canonical, canonical_unit, collected_at,
            value_reported, unit_reported, in_canonical_unit,
            shown_decimals(value_reported, in_canonical_unit, report_decimals)
        ) as evidence,
        source_file,
        row_number
    from int_latest_labs
    where analyte = wanted;
