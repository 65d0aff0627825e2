-- Helpers shared by the format adapters (sql/adapters/<format>/). Text in, text out: the
-- adapters present every canonical column as text, as a CSV file is read, and the staging SQL
-- types it.

-- A date-time as the source wrote it on its own clock: '2012-10-19T23:37:54+02:00' reads
-- '2012-10-19T23:37:54', '2019-02-17T05:07:38Z' reads '2019-02-17T05:07:38'. The offset is
-- dropped, not applied: a specimen taken at 23:37 local time was taken on the 19th where the
-- patient was, which is the date every look-back window counts (applying the offset would
-- move it to the 20th in UTC). A date alone, or text that is not a date-time, is kept as it is
-- (staging quarantines what it cannot read). Text shorter than the shortest date-time with an
-- offset (17 characters, '2012-10-19T23:37Z') is kept without the regular expression.
CREATE OR REPLACE TEMP MACRO local_datetime(v) AS CASE
    WHEN length(v::VARCHAR) < 17 THEN nullif(trim(v::VARCHAR), '')
    ELSE nullif(regexp_replace(trim(v::VARCHAR),
        '^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?)(Z|[+-]\d\d:?\d\d)$', '\1'), '')
END;

-- The first non-empty text of a list of candidates (NULL and '' both count as missing).
CREATE OR REPLACE TEMP MACRO first_text(a, b) AS coalesce(nullif(trim(a::VARCHAR), ''), nullif(trim(b::VARCHAR), ''));

-- A FHIR reference to a Patient: 'Patient/123', 'https://x/fhir/Patient/123',
-- 'Patient/123/_history/2' and 'urn:uuid:123' all read '123'; anything else reads NULL (the
-- row is then quarantined for its missing patient_id). The first two branches are the common
-- 'Patient/123' (no other '/') and 'urn:uuid:123' with nothing to trim, read without the
-- regular expression or trim: the same answer at a quarter of the cost (docs/benchmarks.md,
-- session 10; tests/unit/test_adapter_macros.py holds them to the regular expression). The
-- other '/' is looked for with LIKE, on bytes: a substring counts characters (session 15).
CREATE OR REPLACE TEMP MACRO fhir_patient_id(ref) AS CASE
    WHEN ref::VARCHAR LIKE 'Patient/%' AND ref::VARCHAR NOT LIKE 'Patient/%/%'
        AND ref::VARCHAR = trim(ref::VARCHAR) THEN nullif(substr(ref::VARCHAR, 9), '')
    WHEN starts_with(ref::VARCHAR, 'urn:uuid:') AND ref::VARCHAR = trim(ref::VARCHAR)
        THEN nullif(substr(ref::VARCHAR, 10), '')
    WHEN starts_with(trim(ref::VARCHAR), 'urn:uuid:') THEN nullif(substr(trim(ref::VARCHAR), 10), '')
    ELSE nullif(regexp_extract(trim(ref::VARCHAR), '(^|/)Patient/([^/]+)(/_history/[^/]*)?$', 2), '')
END;

-- The id a FHIR reference names, whatever its type: 'Medication/abc', 'urn:uuid:abc', '#abc'
-- (a contained resource) all read 'abc'.
CREATE OR REPLACE TEMP MACRO fhir_ref_id(ref) AS CASE
    WHEN starts_with(trim(ref::VARCHAR), 'urn:uuid:') THEN substr(trim(ref::VARCHAR), 10)
    WHEN starts_with(trim(ref::VARCHAR), '#') THEN substr(trim(ref::VARCHAR), 2)
    ELSE regexp_extract(trim(ref::VARCHAR), '([^/]+)(/_history/[^/]*)?$', 1)
END;

-- The code of the first coding of a FHIR CodeableConcept in one of the systems given.
CREATE OR REPLACE TEMP MACRO fhir_code(codings, systems) AS
    list_filter(codings, lambda c: list_contains(systems, trim(c.system)))[1].code;
