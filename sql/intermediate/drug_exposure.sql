-- drug_episodes(groups, gap_days := 0): the periods of exposure to a set of drug groups. Grain:
-- one row per patient and episode. Each order covers start_date .. covered_until (both days
-- counted; see int_medication_groups for a one-day B12 dose; an open-ended order, or one
-- ending after the as-of date, runs to the as-of date). Orders that overlap or touch merge into
-- one episode, so overlapping prescriptions count once; with gap_days, an order that follows at
-- most gap_days days without cover (a late refill) continues the episode too.
-- reads: int_medication_groups
CREATE OR REPLACE TEMP MACRO drug_episodes(groups, gap_days := 0) AS TABLE
    with periods as (
        select
            patient_id,
            start_date,
            least(coalesce(covered_until, getvariable('run.as_of')::date), getvariable('run.as_of')::date)
                as end_date
        from int_medication_groups
        where list_contains(groups, drug_group)
            and start_date <= getvariable('run.as_of')::date
    ),

    ordered as (
        select
            *,
            max(end_date) over (
                partition by patient_id order by start_date, end_date
                rows between unbounded preceding and 1 preceding
            ) as previous_end
        from periods
    ),

    numbered as (
        select
            *,
            sum(case
                when previous_end is null or start_date > previous_end + 1 + gap_days::integer
                    then 1 else 0 end)
                over (partition by patient_id order by start_date, end_date rows unbounded preceding)
                as episode
        from ordered
    )

    select patient_id, episode, min(start_date) as start_date, max(end_date) as end_date
    from numbered
    group by patient_id, episode;

-- drug_exposure(groups, gap_days := 0): exposure to a set of drug groups, the building block of
-- the medication criteria. Grain: one row per patient with any order of those groups started by
-- the as-of date. exposure_days adds up the episodes of drug_episodes(groups, gap_days) (so
-- with a gap_days, the gaps it bridges count as exposure: pass one only to date episodes).
-- is_current: an episode reaches the as-of date. current_start_date: where that episode began.
CREATE OR REPLACE TEMP MACRO drug_exposure(groups, gap_days := 0) AS TABLE
    select
        patient_id,
        sum(end_date - start_date + 1)::integer as exposure_days,
        max(end_date) = getvariable('run.as_of')::date as is_current,
        max(end_date) as last_end_date,
        max(start_date) filter (where end_date = getvariable('run.as_of')::date) as current_start_date,
        min(start_date) as first_start_date,
        count(*) as episodes
    from drug_episodes(groups, gap_days := gap_days)
    group by patient_id;

-- long_term_exposure(groups, min_days, recent_days): patients whose exposure to the groups is
-- more than min_days in total and is current or ended within recent_days of the as-of date.
CREATE OR REPLACE TEMP MACRO long_term_exposure(groups, min_days, recent_days) AS TABLE
    select *
    from drug_exposure(groups)
    where exposure_days > min_days
        and (is_current or last_end_date >= getvariable('run.as_of')::date - recent_days::integer);

-- therapy_orders(groups): the orders of a set of drug groups (for "started since" and "current"
-- tests), with their route as written. is_current: the order covers the as-of date (up to its
-- covered_until: a one-day B12 dose covers until the next maintenance dose is due).
CREATE OR REPLACE TEMP MACRO therapy_orders(groups) AS TABLE
    select patient_id, drug_group, start_date, end_date, covered_until, route,
        start_date <= getvariable('run.as_of')::date
            and coalesce(covered_until, getvariable('run.as_of')::date) >= getvariable('run.as_of')::date
            as is_current
    from int_medication_groups
    where list_contains(groups, drug_group)
        and start_date <= getvariable('run.as_of')::date;

-- on_b12_therapy(): the patients with B12 therapy (settings.b12_therapy_groups) current on the
-- as-of date: a deficient result of theirs asks for a review of adherence, route and dose,
-- not for a course to start. Grain: one row per patient.
CREATE OR REPLACE TEMP MACRO on_b12_therapy() AS TABLE
    select distinct patient_id
    from therapy_orders(getvariable('settings.b12_therapy_groups'))
    where is_current;
