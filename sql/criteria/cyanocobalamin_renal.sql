-- Criterion cyanocobalamin_renal (safety): current cyanocobalamin with the latest eGFR below the
-- limit, or a recorded condition of ckd_conditions (chronic kidney disease stage 3-5, end-stage
-- renal disease, dialysis), or one of ckd_unstaged_conditions (chronic kidney disease of
-- unspecified stage) when no eGFR result in its look-back could stage it.
-- source_file/row_number: NULL; the order and the eGFR result or diagnosis decide it together.
-- Grain: one row per patient meeting it.
-- reads: int_patient_conditions, latest_lab, therapy_orders
with cyanocobalamin as (
    select patient_id, min(start_date) as since
    from therapy_orders(getvariable('cyanocobalamin_renal.drug_groups'))
    where is_current
    group by patient_id
),

low_egfr as (
    select patient_id, evidence
    from latest_lab('egfr')
    where is_below(value, censor, getvariable('cyanocobalamin_renal.egfr_below'))
),

any_egfr as (
    select distinct patient_id from latest_lab('egfr')
),

ckd as (
    select
        int_patient_conditions.patient_id,
        string_agg(printf('%s (%s)', first_code, first_recorded_at), ', '
            order by first_recorded_at, first_code) as codes
    from int_patient_conditions
    where list_contains(getvariable('cyanocobalamin_renal.ckd_conditions'), condition)
        or (
            list_contains(getvariable('cyanocobalamin_renal.ckd_unstaged_conditions'), condition)
            and int_patient_conditions.patient_id not in (select patient_id from any_egfr)
        )
    group by int_patient_conditions.patient_id
),

final as (
    select
        cyanocobalamin.patient_id,
        'cyanocobalamin_renal' as criterion,
        null::double as value,
        null::varchar as unit,
        cyanocobalamin.since::timestamp as observed_at,
        printf('cyanocobalamin current since %s; ', cyanocobalamin.since)
            || concat_ws('; ', low_egfr.evidence, 'CKD ' || ckd.codes) as detail,
        detail as evidence,
        null::varchar as source_file,
        null::bigint as row_number,
        null::varchar as note_key
    from cyanocobalamin
    left join low_egfr on low_egfr.patient_id = cyanocobalamin.patient_id
    left join ckd on ckd.patient_id = cyanocobalamin.patient_id
    where low_egfr.patient_id is not null or ckd.patient_id is not null
)

select * from final
