-- Audit: the distribution of every stored valid result per analyte, in its canonical unit,
-- with the tails outside Tukey's fences (quartiles -/+ report.implausible_iqr_fence times the
-- interquartile range) and values at or below zero, which no analyte here can have.
-- Percentiles are approximate (t-digest, approx_quantile): exact quantiles hold every value
-- of an analyte in memory and ran out of it at 50M results under a 3 GB limit. The five come
-- from one digest per analyte (approx_quantile with a list), which gives the numbers five
-- digests gave (the same digest of the same rows) at a fifth of the cost; the tails are
-- counted on a histogram (one row per analyte and distinct value, about 23,000 rows for 10M
-- results) instead of a second join over every result.
-- Grain: one row per analyte with results.
with stats as (
    select
        analyte,
        count(value_canonical) as results,
        min(value_canonical) as min,
        approx_quantile(value_canonical, [0.01, 0.25, 0.5, 0.75, 0.99]) as percentiles,
        max(value_canonical) as max,
        count(*) filter (where value_canonical <= 0) as at_or_below_zero
    from lab_results
    where analyte is not null
    group by analyte
),

histogram as (
    select analyte, value_canonical as value, count(*) as n
    from lab_results
    where analyte is not null
    group by analyte, value_canonical
),

fenced as (
    select
        analyte, results, min,
        percentiles[1] as p01,
        percentiles[2] as q1,
        percentiles[3] as median,
        percentiles[4] as q3,
        percentiles[5] as p99,
        max, at_or_below_zero,
        percentiles[2] - getvariable('report.implausible_iqr_fence')
        * (percentiles[4] - percentiles[2]) as low_fence,
        percentiles[4] + getvariable('report.implausible_iqr_fence')
        * (percentiles[4] - percentiles[2]) as high_fence
    from stats
),

tails as (
    select
        fenced.analyte,
        coalesce(sum(histogram.n) filter (where histogram.value < fenced.low_fence), 0)::bigint
            as below_low_fence,
        coalesce(sum(histogram.n) filter (where histogram.value > fenced.high_fence), 0)::bigint
            as above_high_fence
    from histogram
    inner join fenced on fenced.analyte = histogram.analyte
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
