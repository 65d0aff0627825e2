-- FHIR adapter: MedicationRequests and MedicationStatements as the canonical medications
-- (docs/inputs.md, "FHIR R4"). Grain: one row per order or statement: medication_orders.sql's
-- rows (each mapped from the resource alone), the drug of an order that names none itself
-- taken from the Medication resource it references ('Medication/id' or 'urn:uuid:id', anywhere
-- in the export; the first read of an id). An order whose Medication is missing, or has no
-- code, keeps the reference's display as its medication, and no RxNorm or ATC code.
-- (A separate step so that the first part keeps its rows in the order read: a join keeps none.)
with orders as (
    -- medication_orders.sql's rows, each with _rid, source_file and row_number
    select * from _adapted_medication_orders
),

medication_resources as (
    -- r: the Medication read with sql/adapters/fhir/structures/medication.json
    select
        r.id as id,
        first_text(r.code.text, r.code.coding[1].display) as medication,
        fhir_code(r.code.coding, ['http://www.nlm.nih.gov/research/umls/rxnorm']) as rxnorm,
        fhir_code(r.code.coding, ['http://www.whocc.no/atc']) as atc
    from fhir_medication
    where resource_type = 'Medication'
    qualify row_number() over (partition by r.id order by _file_id, row_number) = 1
),

final as (
    select
        orders.* exclude (_medication_id) replace (
            case
                when medication_resources.id is null then orders.medication
                -- the Medication's text or first display, else the reference's display
                else first_text(medication_resources.medication, orders.medication)
            end as medication,
            case
                when medication_resources.id is null then orders.rxnorm
                else medication_resources.rxnorm
            end as rxnorm,
            case
                when medication_resources.id is null then orders.atc
                else medication_resources.atc
            end as atc
        )
    from orders
    left join medication_resources on medication_resources.id = orders._medication_id
)

select * from final
