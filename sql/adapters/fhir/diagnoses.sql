-- FHIR adapter: Conditions as the canonical diagnoses (docs/inputs.md, "FHIR R4").
-- Grain: one row per Condition; _left_out names why one is not presented (verificationStatus
-- entered-in-error or refuted), _note how it was coded (both counted for run.json).
-- The code is the first ICD-10(-CM) coding, else the first SNOMED CT coding (code_system says which, for the risk-condition lists),
-- else the first coding as written; recorded_at: onsetDateTime, else onsetPeriod.start, else
-- recordedDate.
with parsed as (
    -- r: the Condition read with sql/adapters/fhir/structures/condition.json
    select _file_id, source_file, row_number, r
    from fhir_condition
    where resource_type = 'Condition'
),

kept as (
    select
        *,
        case
            when r.verificationStatus.coding[1].code in ('entered-in-error', 'refuted')
                then 'Condition ' || r.verificationStatus.coding[1].code
        end as _left_out
    from parsed
),

coded as (
    select
        kept.*,
        fhir_code(r.code.coding, ['http://hl7.org/fhir/sid/icd-10-cm', 'http://hl7.org/fhir/sid/icd-10']) as icd10,
        fhir_code(r.code.coding, ['http://snomed.info/sct']) as snomed
    from kept
),

final as (
    select
        _file_id,
        source_file,
        row_number,
        fhir_patient_id(r.subject.reference) as patient_id,
        coalesce(icd10, snomed, r.code.coding[1].code) as code,
        case
            when icd10 is not null then 'icd10'
            when snomed is not null then 'snomed'
        end as code_system,
        local_datetime(coalesce(
            first_text(r.onsetDateTime, r.onsetPeriod.start), r.recordedDate
        )) as recorded_at,
        first_text(r.code.text, r.code.coding[1].display) as description,
        _left_out,
        'Conditions coded by ' || case
            when icd10 is not null then 'ICD-10'
            when snomed is not null then 'SNOMED CT'
            else 'another system (matches no list)'
        end as _note
    from coded
)

select * from final
