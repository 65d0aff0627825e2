-- OMOP adapter: PERSON (with DEATH and CARE_SITE) as the canonical patients (docs/inputs.md,
-- "OMOP CDM"). Grain: one row per PERSON row, with its file and row.
-- sex: gender_concept_id 8507 (MALE) and 8532 (FEMALE), the OMOP Gender vocabulary's standard
-- concepts; any other concept reads gender_source_value as written. birth_date: birth_datetime,
-- else year, month and day of birth when all three are there (a year alone is no birth date:
-- the row is quarantined as the canonical one would be). death_date: the person's earliest
-- DEATH row. site: the CARE_SITE's name, else the care_site_id. _source_identifiers: what the
-- site's [identifiers] columns may be read from (rules profile): person_source_value.
with person as (
    select * from src_person
),

death as (
    select person_id, min(first_text(death_date, death_datetime)) as death_date
    from src_death
    group by person_id
),

care_site as (
    select care_site_id, any_value(first_text(care_site_name, care_site_source_value)) as name
    from src_care_site
    group by care_site_id
),

final as (
    select
        person._file_id,
        person.source_file,
        person.row_number,
        person.person_id as patient_id,
        case trim(person.gender_concept_id)
            when '8507' then 'M'
            when '8532' then 'F'
            else person.gender_source_value
        end as sex,
        coalesce(
            nullif(trim(person.birth_datetime), ''),
            case
                when try_cast(person.year_of_birth as integer) is not null
                    and try_cast(person.month_of_birth as integer) is not null
                    and try_cast(person.day_of_birth as integer) is not null
                    then printf('%04d-%02d-%02d', person.year_of_birth::integer,
                        person.month_of_birth::integer, person.day_of_birth::integer)
            end
        ) as birth_date,
        coalesce(care_site.name, nullif(trim(person.care_site_id), '')) as site,
        death.death_date,
        map_from_entries(list_filter(
            [{'key': 'person_source_value', 'value': nullif(trim(person.person_source_value), '')}],
            lambda e: e.value is not null
        )) as _source_identifiers
    from person
    left join death on death.person_id = person.person_id
    left join care_site on care_site.care_site_id = person.care_site_id
)

select * from final
