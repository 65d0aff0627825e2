-- Mart: the flags of this run with the clinician feedback in force on them.
-- Grain: one row per patient and criterion met.
-- Feedback 'treated', 'declined' or 'not-applicable' suppresses the flag (it stays in
-- flags.parquet, but no longer puts the patient on the worklist) until its until date passes or
-- new evidence arrives: a flag observed after the feedback was received is not suppressed.
-- 'reviewed' only annotates.
-- reads: criteria, int_active_feedback
with flags as (
    select * from run_flags
),

feedback as (
    select * from int_active_feedback
),

final as (
    select
        flags.*,
        feedback.action as feedback_action,
        feedback.note as feedback_note,
        feedback.received_on as feedback_received_on,
        feedback.until as feedback_until,
        coalesce(
            feedback.action in ('treated', 'declined', 'not-applicable')
            and not coalesce(flags.observed_at::date > feedback.received_on, false),
            false
        ) as is_suppressed
    from flags
    left join feedback
        on feedback.patient_id = flags.patient_id and feedback.criterion = flags.criterion
)

select * from final
