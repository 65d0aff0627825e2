-- Mart: the worklist. Grain: one row per patient with at least one action criterion met,
-- most urgent first (priority, then number of criteria met, then patient_id).
-- criteria lists every criterion met (action and context) in catalogue order; the
-- recommended action gives the action texts of the most urgent criteria met and names the rest;
-- evidence lists the lab results behind them; latest_evidence_on (a DATE) is the newest date the
-- action criteria met are dated by (a result's collection, the day a follow-up fell due, the
-- start of a current drug, the last B12 or MMA test for screening; NULL when none). status
-- says whether the patient was already on the worklist of the previous successful run in this
-- database (the latest one with an earlier as-of date, so a run repeated for the same date
-- gives the same statuses). Flags suppressed by clinician feedback do not count; the feedback
-- on any flag shows in the feedback column.
-- reads: flags, int_previous_worklist, patients, rule_criteria, rule_notes, rule_priorities
with flags as (
    select * from run_flags
),

catalogue as (
    select criterion, ordinal, role, priority, priority_rank, action from rule_criteria
),

rule_notes as (
    select criterion, note_key, note from rule_notes
),

all_flagged as (
    select flags.*, catalogue.ordinal, catalogue.role, catalogue.priority_rank, catalogue.action
    from flags
    inner join catalogue on catalogue.criterion = flags.criterion
),

flagged as (
    select * from all_flagged where not is_suppressed
),

feedback as (
    select
        patient_id,
        string_agg(
            printf('%s: %s on %s%s%s', criterion, feedback_action, feedback_received_on,
                case when is_suppressed then ' (suppressed)' else '' end,
                coalesce(' - ' || feedback_note, '')),
            '; ' order by ordinal
        ) as feedback
    from all_flagged
    where feedback_action is not null
    group by patient_id
),

patients as (
    select patient_id, sex, birth_date, site from patients
),

previous_worklist as (
    select patient_id from int_previous_worklist
),

per_patient as (
    select
        patient_id,
        min(priority_rank) filter (where role = 'action') as priority_rank,
        count(*) as criteria_count,
        string_agg(criterion, ';' order by ordinal) as criteria,
        min(priority_rank) filter (where role = 'action') as top_rank,
        list(struct_pack(rank := priority_rank, criterion := criterion, action := action) order by ordinal)
            filter (where role = 'action') as actions,
        max(observed_at) filter (where role = 'action')::date as latest_evidence_on
    from flagged
    group by patient_id
    having count(*) filter (where role = 'action') > 0
),

evidence as (
    select patient_id, string_agg(evidence, '; ' order by first_ordinal) as evidence
    from (
        select patient_id, evidence, min(ordinal) as first_ordinal
        from flagged
        where evidence is not null
        group by patient_id, evidence
    )
    group by patient_id
),

-- Notes of context criteria that change how to act (the platelet band decides the injection
-- technique and transfusion support).
notes as (
    select flagged.patient_id, string_agg(rule_notes.note, ' ' order by flagged.ordinal) as notes
    from flagged
    inner join rule_notes
        on rule_notes.criterion = flagged.criterion and rule_notes.note_key = flagged.note_key
    group by flagged.patient_id
),

-- The actions of the most urgent criteria met, in full, then the notes; the other action
-- criteria by name.
actions as (
    select
        per_patient.patient_id,
        concat_ws(' ',
            array_to_string(list_distinct([a.action for a in actions if a.rank = top_rank]), ' '),
            notes.notes,
            'Also: ' || nullif(array_to_string(
                [a.criterion for a in actions if a.rank > top_rank], ', '), '') || '.'
        ) as recommended_action
    from per_patient
    left join notes on notes.patient_id = per_patient.patient_id
),

final as (
    select
        per_patient.patient_id,
        priorities.priority,
        per_patient.criteria,
        actions.recommended_action,
        coalesce(evidence.evidence, '') as evidence,
        case when previous_worklist.patient_id is null then 'new' else 'persisting' end as status,
        per_patient.latest_evidence_on,
        coalesce(feedback.feedback, '') as feedback,
        patients.sex,
        age_on(patients.birth_date, getvariable('run.as_of')::date) as age,
        patients.site,
        per_patient.priority_rank,
        per_patient.criteria_count
    from per_patient
    left join rule_priorities as priorities on priorities.rank = per_patient.priority_rank
    left join actions on actions.patient_id = per_patient.patient_id
    left join evidence on evidence.patient_id = per_patient.patient_id
    left join patients on patients.patient_id = per_patient.patient_id
    left join previous_worklist on previous_worklist.patient_id = per_patient.patient_id
    left join feedback on feedback.patient_id = per_patient.patient_id
)

select * exclude (priority_rank, criteria_count)
from final
order by priority_rank, criteria_count desc, patient_id
