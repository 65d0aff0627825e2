-- The registry: what every run leaves in the database besides the kept extract tables.
-- One statement per table; pipeline/registry.py runs them all at the start of each run (and
-- flows/failures.py the one for runs when it records a run that never opened the database).

-- runs: one row per run, succeeded or failed, with its provenance record (run.json).
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, as_of DATE, started_at TIMESTAMP, finished_at TIMESTAMP,
    status VARCHAR, error VARCHAR, code_version VARCHAR, rules_version VARCHAR,
    rules_sha256 VARCHAR, record JSON);

-- flags_history: one row per run, patient and criterion met (flags.parquet of each run).
CREATE TABLE IF NOT EXISTS flags_history (
    run_id VARCHAR, as_of DATE, patient_id VARCHAR, criterion VARCHAR, value DOUBLE,
    unit VARCHAR, observed_at TIMESTAMP, detail VARCHAR, source_file VARCHAR,
    row_number BIGINT, rules_version VARCHAR);

-- worklist_history: one row per run and patient on its worklist.
CREATE TABLE IF NOT EXISTS worklist_history (
    run_id VARCHAR, as_of DATE, patient_id VARCHAR, priority VARCHAR, criteria VARCHAR,
    status VARCHAR);

-- quarantine_log: one row per run and quarantined input row, with its reason and raw row.
CREATE TABLE IF NOT EXISTS quarantine_log (
    run_id VARCHAR, as_of DATE, kind VARCHAR, source_file VARCHAR, row_number BIGINT,
    reason VARCHAR, raw_row VARCHAR);

-- measures_history: one row per run and care-process measure (numerator, denominator).
CREATE TABLE IF NOT EXISTS measures_history (
    run_id VARCHAR, as_of DATE, measure VARCHAR, numerator BIGINT, denominator BIGINT,
    rules_version VARCHAR);

-- audit_history: one row per run and audit snapshot table, its rows as JSON.
CREATE TABLE IF NOT EXISTS audit_history (run_id VARCHAR, as_of DATE, name VARCHAR, rows JSON);

-- ingested_files: one row per input file content (SHA-256) ever ingested; later runs skip it.
CREATE TABLE IF NOT EXISTS ingested_files (
    sha256 VARCHAR PRIMARY KEY, kind VARCHAR, file_name VARCHAR, size_bytes BIGINT,
    run_id VARCHAR, as_of DATE, rows_read BIGINT, rows_quarantined BIGINT);

-- lab_result_corrections: one row per stored lab result replaced by a corrected value.
CREATE TABLE IF NOT EXISTS lab_result_corrections (
    run_id VARCHAR, as_of DATE, record_key VARCHAR, patient_id VARCHAR, analyte VARCHAR,
    collected_at TIMESTAMP, old_value VARCHAR, old_unit VARCHAR, new_value VARCHAR,
    new_unit VARCHAR, old_source_file VARCHAR, new_source_file VARCHAR);

-- store_state: the kept state tables (pipeline/store/state.py), each with the SHA-256 of the
-- SQL that built it and the rows of its source it reflects (source_rows); a state whose SQL has
-- changed, or whose source changed outside a run, is built again from the history.
CREATE TABLE IF NOT EXISTS store_state (
    name VARCHAR PRIMARY KEY, sql_sha256 VARCHAR, built_run_id VARCHAR, built_at TIMESTAMP,
    source_rows BIGINT);

-- lab_codings: the dictionary of the lab coding every stored result has (pipeline/store/merge.py):
-- one row per combination of code, test name and unit as written with what they were coded as
-- (analyte, unit key, conversion factor, canonical unit, which mapping recognised the test).
-- lab_rows keeps its coding_id, and the view lab_results puts the two back together.
CREATE TABLE IF NOT EXISTS lab_codings (
    coding_id INTEGER, loinc VARCHAR, test_name VARCHAR, unit_reported VARCHAR,
    unit_key VARCHAR, analyte VARCHAR, coded_by VARCHAR, factor_to_canonical DOUBLE,
    canonical_unit VARCHAR, run_id VARCHAR);
