-- Audit: the distribution of every stored valid result per analyte, in its canonical unit,
-- with the tails outside Tukey's fences (quartiles -/+ report.implausible_iqr_fence times the
-- interquartile range) and values at or below zero, which no analyte here can have.
-- Read from the kept profile of the stored results (sql/state/lab_profile.sql), which counts the
-- results of each canonical value: a histogram of every analyte, kept up to date night by night,
-- so the history is not read. The percentiles are exact, continuous (interpolated between the
-- two results either side of the position, as quantile_cont computes them over the results
-- themselves), and the same whatever the number of threads; before the profile they were
-- t-digest approximations (approx_quantile), because exact quantiles over the results held
-- every value in memory.
-- Grain: one row per analyte with results (results 0 and no percentiles when none of them has
-- a canonical value).
with by_value as (
    select
        lab_codings.analyte,
        lab_profile.value_canonical as value,
        sum(lab_profile.results)::bigint as n
    from lab_profile
    inner join lab_codings on lab_codings.coding_id = lab_profile.coding_id
    where lab_codings.analyte is not null
    group by all
),

-- each value with the 0-based rank of the first result holding it among the analyte's results
-- in order, and how many results of the analyte have a value
ranked as (
    select
        analyte,
        value,
        n,
        sum(n) over (partition by analyte order by value rows unbounded preceding) - n
            as first_rank,
        sum(n) over (partition by analyte) as valued
    from by_value
    where value is not null
),

-- each percentile's position among the analyte's results in order: p * (results - 1)
positions as (
    select analytes.analyte, wanted.ordinal, wanted.p * (analytes.valued - 1) as position
    from (select distinct analyte, valued from ranked) as analytes
    cross join (
        values (1, 0.01::double), (2, 0.25), (3, 0.5), (4, 0.75), (5, 0.99)
    ) as wanted (ordinal, p)
),

percentiles as (
    select
        positions.analyte,
        positions.ordinal,
        below.value + (positions.position - floor(positions.position)) * (above.value - below.value)
            as value
    from positions
    inner join ranked as below
        on below.analyte = positions.analyte
        and floor(positions.position) >= below.first_rank
        and floor(positions.position) < below.first_rank + below.n
    inner join ranked as above
        on above.analyte = positions.analyte
        and ceil(positions.position) >= above.first_rank
        and ceil(positions.position) < above.first_rank + above.n
),

stats as (
    select
        by_value.analyte,
        coalesce(sum(by_value.n) filter (where by_value.value is not null), 0)::bigint as results,
        min(by_value.value) as min,
        max(by_value.value) as max,
        coalesce(sum(by_value.n) filter (where by_value.value <= 0), 0)::bigint
            as at_or_below_zero
    from by_value
    group by by_value.analyte
),

fenced as (
    select
        stats.analyte, stats.results, stats.min,
        p01.value as p01,
        q1.value as q1,
        median.value as median,
        q3.value as q3,
        p99.value as p99,
        stats.max, stats.at_or_below_zero,
        q1.value - getvariable('report.implausible_iqr_fence') * (q3.value - q1.value)
            as low_fence,
        q3.value + getvariable('report.implausible_iqr_fence') * (q3.value - q1.value)
            as high_fence
    from stats
    left join percentiles as p01 on p01.analyte = stats.analyte and p01.ordinal = 1
    left join percentiles as q1 on q1.analyte = stats.analyte and q1.ordinal = 2
    left join percentiles as median on median.analyte = stats.analyte and median.ordinal = 3
    left join percentiles as q3 on q3.analyte = stats.analyte and q3.ordinal = 4
    left join percentiles as p99 on p99.analyte = stats.analyte and p99.ordinal = 5
),

tails as (
    select
        fenced.analyte,
        coalesce(sum(by_value.n) filter (where by_value.value < fenced.low_fence), 0)::bigint
            as below_low_fence,
        coalesce(sum(by_value.n) filter (where by_value.value > fenced.high_fence), 0)::bigint
            as above_high_fence
    from fenced
    left join by_value on by_value.analyte = fenced.analyte
    group by fenced.analyte
),

final as (
    select
        fenced.analyte, rule_analytes.canonical_unit as unit, results, min, p01, q1, median, q3,
        p99, max, low_fence, high_fence, below_low_fence, above_high_fence, at_or_below_zero,
        getvariable('report.implausible_iqr_fence')::double as iqr_fence
    from fenced
    inner join tails on tails.analyte = fenced.analyte
    left join rule_analytes on rule_analytes.analyte = fenced.analyte
)

select * from final order by analyte
