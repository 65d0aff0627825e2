-- Mart: the worklist. Grain: one row per patient with at least one action criterion met,
-- most urgent first (priority, then number of criteria met, then patient_id).
-- criteria lists every criterion met (action and context) in catalogue order; the
-- recommended action gives the action texts of the most urgent criteria met, then each advice
-- sentence of the rules file ([advice]) whose conditions the patient's flags meet, once, in file
-- order, and names the other action criteria met by their titles;
-- evidence lists the lab results behind them; latest_evidence_on (a DATE) is the newest date the
-- action criteria met are dated by (a result's collection, the day a follow-up fell due, the
-- start of a current drug, the last B12 or MMA test for screening; NULL when none). status says whether the patient was already on
-- the worklist of the previous successful run in this database (the latest one with an earlier
-- as-of date, so a run repeated for the same date gives the same statuses). Flags suppressed by
-- clinician feedback do not count; the feedback on any flag shows in the feedback column.
-- reads: flags, int_previous_worklist, patients, rule_advice, rule_criteria, rule_priorities
-- A large population's worklist is built in parts of patients (pipeline/screening/models.py,
-- worklist_parts): the variables run.worklist_parts and run.worklist_part choose this statement's
-- patients by a hash of the id (unset: everyone). Every row is one patient's, so the parts
-- together are the whole worklist; the parts are put in order once, by priority_rank and
-- criteria_count, which the table does not keep.
with flags as (
    select * from run_flags
    where hash(patient_id) % coalesce(getvariable('run.worklist_parts'), 1)
        = coalesce(getvariable('run.worklist_part'), 0)
),

catalogue as (
    select criterion, ordinal, role, priority, priority_rank, action, title from rule_criteria
),

advice as (
    select advice, ordinal, text, when_any, and_any from rule_advice
),

all_flagged as (
    select
        flags.*, catalogue.ordinal, catalogue.role, catalogue.priority_rank
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
            printf('%s: %s on %s%s%s', catalogue.title, feedback_action, feedback_received_on,
                case when is_suppressed then ' (suppressed)' else '' end,
                coalesce(' - ' || feedback_note, '')),
            '; ' order by all_flagged.ordinal
        ) as feedback
    from all_flagged
    inner join catalogue on catalogue.criterion = all_flagged.criterion
    where feedback_action is not null
    group by patient_id
),

patients as (
    select patient_id, sex, birth_date, site from patients
),

previous_worklist as (
    select patient_id from int_previous_worklist
),

-- The texts of a worklist row (criteria, recommended action) depend only on which criteria
-- the patient meets and on their note keys: the patient's signature. Many patients share one,
-- so each text is made once per signature (815 for the bench's million patients) and joined
-- back, instead of gathering titles and action texts for every patient (at 1M patients the
-- per-patient lists of texts were 2.5 s of this statement's 6.6 s).
per_patient as (
    select
        patient_id,
        min(priority_rank) filter (where role = 'action') as priority_rank,
        count(*) as criteria_count,
        list_sort(list(ordinal)) as ordinals,
        coalesce(
            list_sort(list(distinct criterion || ':' || note_key) filter (where note_key is not null)),
            []
        ) as note_items,
        max(observed_at) filter (where role = 'action')::date as latest_evidence_on
    from flagged
    group by patient_id
    having count(*) filter (where role = 'action') > 0
),

evidence as (
    select
        patient_id,
        array_to_string(
            [e.evidence for e in list_sort(list(struct_pack(first_ordinal, evidence)))], '; '
        ) as evidence
    from (
        select patient_id, evidence, min(ordinal) as first_ordinal
        from flagged
        where evidence is not null
        group by patient_id, evidence
    )
    group by patient_id
),

signatures as (
    select distinct ordinals, note_items from per_patient
),

-- Each criterion a signature holds, with its catalogue entry (ordinals in catalogue order).
signature_criteria as (
    select met.ordinals, met.note_items, catalogue.*
    from (select ordinals, note_items, unnest(ordinals) as ordinal from signatures) as met
    inner join catalogue on catalogue.ordinal = met.ordinal
),

per_signature as (
    select
        ordinals,
        note_items,
        array_to_string(
            [c.criterion for c in list_sort(list(struct_pack(ordinal, criterion)))], ';'
        ) as criteria,
        min(priority_rank) filter (where role = 'action') as top_rank,
        list_sort(
            list(struct_pack(ordinal, rank := priority_rank, title, action))
                filter (where role = 'action')
        ) as actions,
        -- what the flags say, as advice items: each criterion, and criterion:note_key
        list_concat(list(distinct criterion), note_items) as items
    from signature_criteria
    group by ordinals, note_items
),

-- The advice sentences that apply (the platelet band's injection technique only where an
-- injection is advised, the regimen and folate warning wherever deficiency is confirmed ...).
notes as (
    select
        per_signature.ordinals,
        per_signature.note_items,
        array_to_string(
            [a.text for a in list_sort(list(struct_pack(advice.ordinal, advice.text)))], ' '
        ) as notes
    from per_signature
    inner join advice
        on list_has_any(per_signature.items, advice.when_any)
        and (len(advice.and_any) = 0 or list_has_any(per_signature.items, advice.and_any))
    group by per_signature.ordinals, per_signature.note_items
),

-- The actions of the most urgent criteria met, in full, then the advice; the other action
-- criteria by title.
signature_texts as (
    select
        per_signature.ordinals,
        per_signature.note_items,
        per_signature.criteria,
        concat_ws(' ',
            -- each text once, in catalogue order
            array_to_string(
                list_filter(top.texts, lambda t, i: list_position(top.texts, t) = i), ' '
            ),
            notes.notes,
            'Also: ' || nullif(array_to_string(
                [a.title for a in per_signature.actions if a.rank > per_signature.top_rank],
                ', '), '') || '.'
        ) as recommended_action
    from per_signature
    cross join lateral (
        select [a.action for a in per_signature.actions if a.rank = per_signature.top_rank]
            as texts
    ) as top
    left join notes
        on notes.ordinals = per_signature.ordinals and notes.note_items = per_signature.note_items
),

final as (
    select
        per_patient.patient_id,
        priorities.priority,
        signature_texts.criteria,
        signature_texts.recommended_action,
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
    inner join signature_texts
        on signature_texts.ordinals = per_patient.ordinals
        and signature_texts.note_items = per_patient.note_items
    left join evidence on evidence.patient_id = per_patient.patient_id
    left join patients on patients.patient_id = per_patient.patient_id
    left join previous_worklist on previous_worklist.patient_id = per_patient.patient_id
    left join feedback on feedback.patient_id = per_patient.patient_id
)

select * from final
