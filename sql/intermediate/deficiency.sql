-- deficient_results(): each B12-deficient result this run found (the latest B12 when it met
-- b12_deficient, the latest MMA when it met mma_elevated), with its date and the extract row it
-- came from. The safety and care-gap criteria judge every one of them, so a patient meets such
-- a criterion when any deficient result does: a further, older result can add an alert but
-- never switch one off.
-- Reads run_flags as it stands when called: a model that calls it runs after those two
-- criteria (the reads line below; pipeline/screening/models.py derives the order).
-- Grain: one row per deficient patient and deficient analyte.
-- reads: b12_deficient, mma_elevated
CREATE OR REPLACE TEMP MACRO deficient_results() AS TABLE
    select
        patient_id, criterion as found_by, observed_at::date as deficient_on, source_file, row_number
    from run_flags
    where criterion in ('b12_deficient', 'mma_elevated');

-- deficient_patients(): the patients this run found B12-deficient, each with the date of the
-- earliest deficient result: the start of the episode that the care-process measures follow
-- (started on B12 within 7 days of it, folic acid before it, ...).
-- Grain: one row per deficient patient.
CREATE OR REPLACE TEMP MACRO deficient_patients() AS TABLE
    select patient_id, min(deficient_on) as deficient_on
    from deficient_results()
    group by patient_id;
