"""Synthetic screening population with planted cases and an answer key (``b12screen demo``,
the acceptance tests). One module per concern:

- `generate`: the entry point, `generate_population`: draws everything in a fixed order from
  one seed and writes the extracts and the truth folder;
- `guidance`: the criteria in catalogue order with their roles, and the oracle's own copy of
  the guidance profile (thresholds, look-backs, medication rules, condition codes);
- `oracle`: the expected flags, computed in Python without the pipeline's SQL;
- `vocabulary`: what the extracts write: each site's LOINC codes, test names and units, drug
  names and codes, ICD-10-CM codes;
- `age_sex`: the age and sex mix of the background, with its published source;
- `population`: the background patients, their specimens and lab rows;
- `histories`: the background's diagnoses and medication orders, kept clear of boundaries;
- `planted`: the planted cases (`PLANTED`), each with its hand-written expected criteria;
- `messy`: the rows broken on purpose, which a correct run must quarantine;
- `truth`: `DemoTruth`, the answer key `generate_population` returns;
- `writers`: the CSV, gzip and Parquet extracts and the truth files, with deterministic bytes.
"""

from pipeline.demo.generate import generate_population
from pipeline.demo.truth import DemoTruth

__all__ = ["DemoTruth", "generate_population"]
