-- deficient_patients(): the patients this run found B12-deficient (b12_deficient or
-- mma_elevated), each with the date of the earliest deficient result. One definition for the
-- safety criteria and the care-process measures. Reads run_flags as it stands when called, so
-- a criterion placed after those two in the rules file sees them.
-- Grain: one row per deficient patient.
CREATE OR REPLACE TEMP MACRO deficient_patients() AS TABLE
    select patient_id, min(observed_at)::date as deficient_on
    from run_flags
    where criterion in ('b12_deficient', 'mma_elevated')
    group by patient_id;
