-- Audit: the distribution of every stored valid result per analyte, in its canonical unit,
-- with the tails outside Tukey's fences (quartiles -/+ report.implausible_iqr_fence times the
-- interquartile range) and values at or below zero, which no analyte here can have.
-- Percentiles are approximate (t-digest, approx_quantile): exact quantiles hold every value
-- of an analyte in memory and ran out of it at 50M results under a 3 GB limit.
-- Grain: one row per analyte with results.
with stats as (
    select
        analyte,
        count(value_canonical) as results,
        min(value_canonical) as min,
        approx_quantile(value_canonical, 0.01) as p01,
        approx_quantile(value_canonical, 0.25) as q1,
        approx_quantile(value_canonical, 0.5) as median,
        approx_quantile(value_canonical, 0.75) as q3,
        approx_quantile(value_canonical, 0.99) as p99,
        max(value_canonical) as max,
        count(*) filter (where value_canonical <= 0) as at_or_below_zero
    from lab_results
    where analyte is not null
    group by analyte
),

fenced as (
    select
        *,
        q1 - getvariable('report.implausible_iqr_fence') * (q3 - q1) as low_fence,
        q3 + getvariable('report.implausible_iqr_fence') * (q3 - q1) as high_fence
    from stats
),

tails as (
    select
        fenced.analyte,
        count(*) filter (where lab_results.value_canonical < fenced.low_fence) as below_low_fence,
        count(*) filter (where lab_results.value_canonical > fenced.high_fence) as above_high_fence
    from lab_results
    inner join fenced on fenced.analyte = lab_results.analyte
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
