-- Intermediate: the clinician feedback in force on the as-of date.
-- Grain: one row per patient and criterion. The latest feedback received (on or before the as-of
-- date) for a patient and criterion wins; it is in force until its until date has passed.
-- reads: feedback
with feedback as (
    select * from feedback
    where received_on <= getvariable('run.as_of')::date
),

latest as (
    select * from feedback
    qualify row_number() over (
        partition by patient_id, criterion order by received_on desc, _rid desc
    ) = 1
),

final as (
    select patient_id, criterion, action, until, note, received_on
    from latest
    where until is null or until >= getvariable('run.as_of')::date
)

select * from final
