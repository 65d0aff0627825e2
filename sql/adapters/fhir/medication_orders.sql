-- FHIR adapter, first part: MedicationRequests and MedicationStatements as the canonical
-- medications, each from the resource alone (docs/inputs.md, "FHIR R4"); medications.sql
-- then takes the drug of the Medication resource an order references. Grain: one row per
-- order or statement, in the order read (only SELECT and WHERE: the reader reads an NDJSON file
-- with it in one statement, as it does the labs). _left_out names why one is not presented
-- (entered-in-error, cancelled, draft, not-taken), _note which period rule dated it (both
-- counted for run.json), _medication_id the Medication resource to look the drug up in.
-- The drug: medicationCodeableConcept, else the contained Medication whose id its
-- medicationReference names ('#id'); else none here, and medications.sql looks up the
-- Medication resource it names ('Medication/id' or 'urn:uuid:id', anywhere in the export).
-- medication, rxnorm and atc are this drug's (no drug: medication is the reference's display).
-- The period, first that applies (counts.sql counts each):
--   1. dosageInstruction.timing.repeat.boundsPeriod (statements: effectivePeriod); a start
--      without an end is ongoing as the source says (open-ended, like an empty end_date);
--   2. dispenseRequest.validityPeriod;
--   3. the start plus expectedSupplyDuration (days or weeks) times (1 + numberOfRepeatsAllowed);
--   4. authoredOn (statements: effectiveDateTime, dateAsserted) as the start, ending
--      settings.open_order_days later (rules file): an order that says nothing of its length is
--      never taken as running to the as-of date, and each such order is counted.
with parsed as (
    -- r: the order or statement read with sql/adapters/fhir/structures/medication_order.json
    select _file_id, source_file, row_number, resource_type, r
    from fhir_medication_order
    where resource_type in ('MedicationRequest', 'MedicationStatement')
),

kept as (
    select
        *,
        r.medicationReference.reference as med_ref,
        fhir_ref_id(r.medicationReference.reference) as med_ref_id,
        case
            when r.status in ('entered-in-error', 'cancelled', 'draft', 'not-taken')
                then resource_type || ' ' || r.status
        end as _left_out
    from parsed
),

with_drug as (
    select
        kept.*,
        coalesce(
            r.medicationCodeableConcept,
            list_filter(r.contained, lambda c: c.resourceType = 'Medication'
                and c.id = med_ref_id)[1].code
        ) as drug,
        coalesce(r.dosageInstruction, r.dosage)[1] as dosage
    from kept
),

timed as (
    -- each field of the period rules read once (the rules below test and use them)
    select
        with_drug.*,
        first_text(dosage.timing.repeat.boundsPeriod.start, r.effectivePeriod.start) as period_start,
        first_text(dosage.timing.repeat.boundsPeriod.end, r.effectivePeriod.end) as period_end,
        first_text(r.dispenseRequest.validityPeriod.start, r.dispenseRequest.validityPeriod.end)
            as validity_any,
        try_cast(r.dispenseRequest.expectedSupplyDuration.value as double) as supply_value,
        lower(coalesce(r.dispenseRequest.expectedSupplyDuration.code,
            r.dispenseRequest.expectedSupplyDuration.unit)) as supply_unit,
        first_text(first_text(r.authoredOn, r.effectiveDateTime), r.dateAsserted) as authored
    from with_drug
),

periods as (
    select
        timed.*,
        case
            when period_start is not null then 'period'
            when validity_any is not null then 'validity'
            when supply_value > 0 and supply_unit in ('d', 'day', 'days', 'wk', 'week', 'weeks')
                then 'supply'
            else 'default'
        end as period_from
    from timed
),

dated as (
    select
        periods.*,
        local_datetime(case period_from
            when 'period' then period_start
            when 'validity' then first_text(r.dispenseRequest.validityPeriod.start, authored)
            else authored
        end) as start_text,
        supply_value
            * case when supply_unit in ('wk', 'week', 'weeks') then 7 else 1 end
            * (1 + coalesce(try_cast(r.dispenseRequest.numberOfRepeatsAllowed as integer), 0)) as supply_days
    from periods
),

final as (
    select
        _file_id,
        source_file,
        row_number,
        fhir_patient_id(r.subject.reference) as patient_id,
        first_text(first_text(drug.text, drug.coding[1].display), r.medicationReference.display) as medication,
        fhir_code(drug.coding, ['http://www.nlm.nih.gov/research/umls/rxnorm']) as rxnorm,
        fhir_code(drug.coding, ['http://www.whocc.no/atc']) as atc,
        start_text as start_date,
        case period_from
            when 'period' then local_datetime(period_end)
            when 'validity' then local_datetime(r.dispenseRequest.validityPeriod.end)
            when 'supply' then strftime(try_cast(iso_timestamp(start_text) as date) + to_days(supply_days::integer), '%Y-%m-%d')
            else strftime(try_cast(iso_timestamp(start_text) as date)
                + to_days(getvariable('settings.open_order_days')::integer), '%Y-%m-%d')
        end as end_date,
        first_text(first_text(dosage.route.text, dosage.route.coding[1].display), dosage.route.coding[1].code) as route,
        _left_out,
        case period_from
            when 'period' then case
                when period_end is null
                    then 'orders ongoing by their period (a start, no end: open-ended)'
                else 'orders dated by their period (boundsPeriod, effectivePeriod)'
            end
            when 'validity' then 'orders dated by dispenseRequest.validityPeriod'
            when 'supply' then 'orders dated by expectedSupplyDuration x (1 + repeats)'
            else 'orders with a start only, counted for settings.open_order_days'
        end as _note,
        -- the Medication resource medications.sql looks the drug up in: none when the order
        -- names its drug itself or references a contained one ('#id')
        case when drug is null and not starts_with(med_ref, '#') then med_ref_id end
            as _medication_id
    from dated
)

select * from final
