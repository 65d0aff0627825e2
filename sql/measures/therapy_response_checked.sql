-- Measure therapy_response_checked: of the patients whose latest course of B12 therapy began
-- between lookback_days and to_day days before the as-of date (so the window has closed), how
-- many had a response_analytes result collected from day from_day to day to_day of the course.
-- A course is an episode of drug_episodes(): orders merged where they overlap or touch.
-- Grain: one row per patient in the denominator.
-- reads: drug_episodes, lab_results
with courses as (
    select patient_id, max(start_date) as began_on
    from drug_episodes(getvariable('therapy_response_checked.therapy_groups'))
    group by patient_id
),

window_closed as (
    select * from courses
    where began_on >= getvariable('run.as_of')::date
            - getvariable('therapy_response_checked.lookback_days')::integer
        and began_on <= getvariable('run.as_of')::date
            - getvariable('therapy_response_checked.to_day')::integer
),

checked as (
    select window_closed.patient_id, min(lab_results.collected_at)::date as checked_on
    from window_closed
    inner join lab_results on lab_results.patient_id = window_closed.patient_id
    where list_contains(getvariable('therapy_response_checked.response_analytes'), lab_results.analyte)
        and lab_results.collected_at::date between
            window_closed.began_on + getvariable('therapy_response_checked.from_day')::integer
            and window_closed.began_on + getvariable('therapy_response_checked.to_day')::integer
    group by window_closed.patient_id
),

final as (
    select
        window_closed.patient_id,
        checked.patient_id is not null as in_numerator,
        window_closed.began_on as event_date
    from window_closed
    left join checked on checked.patient_id = window_closed.patient_id
)

select * from final
