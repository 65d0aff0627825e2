"""The criteria and the guidance profile as the demo's oracle reads them.

The 26 criteria in catalogue order with their role and priority (docs/criteria.md), and every
threshold, look-back, medication rule and condition code list of the guidance profile.
Deliberately written out here rather than read from data/rules: the answer key must not share
a source with the pipeline. The acceptance test checks that these still equal the rules file.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------
# The criteria, in catalogue order
# ---------------------------------------------------------------------------------------------
LAB_CRITERIA: tuple[str, ...] = (
    "b12_deficient",
    "b12_indeterminate",
    "mma_elevated",
    "homocysteine_elevated",
    "folate_low",
    "anemia",
    "critical_anemia",
    "leukopenia",
    "neutropenia",
    "thrombocytopenia",
    "macrocytosis",
    "pancytopenia",
    "deficiency_with_cytopenia",
    "cytopenia_b12_untested",
    "pseudo_tma_suspect",
    "severe_cytopenia",
)
MED_CRITERIA: tuple[str, ...] = (
    "metformin_long_term",
    "acid_suppression_long_term",
    "b12_lowering_drug",
    "risk_condition",
    "b12_screening_due",
    "folate_without_b12",
    "cyanocobalamin_renal",
    "deficiency_untreated",
    "monitoring_overdue",
    "b12_iv_route",
)
# catalogue order: the two criteria added last come after the rest
ALL_CRITERIA: tuple[str, ...] = (
    *LAB_CRITERIA[:-1],
    *MED_CRITERIA[:-1],
    "severe_cytopenia",
    "b12_iv_route",
)
# role and priority of each criterion (the catalogue); context criteria have no priority
ROLES: dict[str, tuple[str, str | None]] = {
    "b12_deficient": ("action", "high"),
    "b12_indeterminate": ("action", "routine"),
    "mma_elevated": ("action", "high"),
    "homocysteine_elevated": ("context", None),
    "folate_low": ("context", None),
    "anemia": ("context", None),
    "critical_anemia": ("action", "urgent"),
    "leukopenia": ("context", None),
    "neutropenia": ("context", None),
    "thrombocytopenia": ("context", None),
    "macrocytosis": ("context", None),
    "pancytopenia": ("action", "high"),
    "deficiency_with_cytopenia": ("action", "urgent"),
    "cytopenia_b12_untested": ("action", "routine"),
    "pseudo_tma_suspect": ("action", "urgent"),
    "metformin_long_term": ("context", None),
    "acid_suppression_long_term": ("context", None),
    "b12_lowering_drug": ("context", None),
    "risk_condition": ("context", None),
    "b12_screening_due": ("action", "routine"),
    "folate_without_b12": ("action", "urgent"),
    "cyanocobalamin_renal": ("action", "high"),
    "deficiency_untreated": ("action", "high"),
    "monitoring_overdue": ("action", "routine"),
    "severe_cytopenia": ("action", "urgent"),
    "b12_iv_route": ("action", "routine"),
}

# ---------------------------------------------------------------------------------------------
# The guidance profile: thresholds, look-backs, medication rules, condition codes
# ---------------------------------------------------------------------------------------------
THRESHOLDS: dict[str, float] = {
    "b12_deficient.below_pg_ml": 180,
    "b12_indeterminate.upper_pg_ml": 350,
    "mma_elevated.above_nmol_l": 271,
    "homocysteine_elevated.above_umol_l": 10,
    "folate_low.below_ng_ml": 4.0,
    "anemia.male_below_g_dl": 13.0,
    "anemia.female_below_g_dl": 12.0,
    "anemia.unknown_sex_below_g_dl": 12.0,
    "critical_anemia.below_g_dl": 5.0,
    "leukopenia.below_10e9_l": 4.0,
    "neutropenia.below_10e9_l": 1.5,
    "thrombocytopenia.below_10e9_l": 150,
    "thrombocytopenia.band_transfusion_10e9_l": 10,  # severe_cytopenia
    "neutropenia.severe_below_10e9_l": 0.5,  # severe_cytopenia
    "macrocytosis.above_fl": 100,
    "pseudo_tma_suspect.ldh_above_u_l": 250,
    "cyanocobalamin_renal.egfr_below": 60,
}
LOOKBACK_DAYS: dict[str, int] = {
    "b12": 365,
    "mma": 365,
    "homocysteine": 365,
    "folate": 365,
    "hgb": 90,
    "wbc": 90,
    "anc": 90,
    "platelets": 90,
    "mcv": 90,
    "ldh": 90,
    "egfr": 365,
}
# Which analyte each threshold applies to: the background keeps its values away from these.
_THRESHOLD_ANALYTE = {
    "b12_deficient": "b12",
    "b12_indeterminate": "b12",
    "mma_elevated": "mma",
    "homocysteine_elevated": "homocysteine",
    "folate_low": "folate",
    "anemia": "hgb",
    "critical_anemia": "hgb",
    "leukopenia": "wbc",
    "neutropenia": "anc",
    "thrombocytopenia": "platelets",
    "macrocytosis": "mcv",
    "pseudo_tma_suspect": "ldh",
    "cyanocobalamin_renal": "egfr",
}
CUTS: dict[str, tuple[float, ...]] = {
    analyte: tuple(
        v for k, v in THRESHOLDS.items() if _THRESHOLD_ANALYTE[k.split(".")[0]] == analyte
    )
    for analyte in sorted(set(_THRESHOLD_ANALYTE.values()))
}

B12_THERAPY = ("cyanocobalamin", "hydroxocobalamin", "methylcobalamin")
# The medication, diagnosis and safety rules (docs/criteria-semantics.md, guidance profile),
# written out like THRESHOLDS; a test checks them against the rules file. Lists of drug groups
# and conditions compare as sets, day lists in order.
MED_RULES: dict[str, int | tuple[int, ...] | tuple[str, ...]] = {
    "metformin_long_term.drug_groups": ("metformin",),
    "metformin_long_term.min_exposure_days": 120,
    "metformin_long_term.recent_stop_days": 365,
    "acid_suppression_long_term.drug_groups": ("ppi", "h2_blocker"),
    "acid_suppression_long_term.min_exposure_days": 365,
    "acid_suppression_long_term.recent_stop_days": 365,
    "b12_lowering_drug.drug_groups": ("colchicine", "phenobarbital", "pregabalin"),
    "risk_condition.risk_conditions": (
        "pernicious_anemia",
        "gastrectomy",
        "bariatric_surgery",
        "ileal_resection",
        "crohns_disease",
        "celiac_disease",
        "atrophic_gastritis",
        "autoimmune_thyroid",
        "type1_diabetes",
        "sjogren_syndrome",
        "down_syndrome",
    ),
    "b12_screening_due.age_at_least": 75,
    "b12_screening_due.test_interval_days": 365,
    "folate_without_b12.folate_groups": ("folic_acid",),
    "folate_without_b12.therapy_groups": B12_THERAPY,
    "folate_without_b12.therapy_lookback_days": 30,
    "cyanocobalamin_renal.drug_groups": ("cyanocobalamin",),
    "cyanocobalamin_renal.ckd_conditions": ("ckd_stage_3_to_5", "dialysis"),
    "deficiency_untreated.grace_days": 7,
    "deficiency_untreated.therapy_groups": B12_THERAPY,
    "deficiency_untreated.therapy_lookback_days": 30,
    "monitoring_overdue.therapy_groups": B12_THERAPY,
    "monitoring_overdue.cbc_days": (10, 30),
    "monitoring_overdue.cbc_b12_days": (90, 182, 365),
    "monitoring_overdue.yearly_days": 365,
    "monitoring_overdue.grace_days": 14,
    "monitoring_overdue.cbc_analytes": ("hgb", "wbc", "platelets"),
    "monitoring_overdue.b12_analytes": ("b12",),
    "monitoring_overdue.refill_gap_days": 30,
    "cyanocobalamin_renal.ckd_unstaged_conditions": ("ckd_unstaged",),
    "b12_iv_route.iv_routes": (
        "iv",
        "intravenous",
        "intravenously",
        "iv push",
        "iv infusion",
        "iv bolus",
    ),
}
# The settings the oracle reads (the rules file's [settings]), checked the same way.
SETTINGS: dict[str, int | tuple[str, ...]] = {
    "minimum_age": 18,
    "single_dose_cover_days": 92,
    "b12_therapy_groups": B12_THERAPY,
}
# ICD-10 codes of each condition (docs/criteria-semantics.md); a code matches itself and every
# code below it, compared without the dot and upper-cased. A test checks data/diagnosis_codes.csv.
CONDITION_CODES: dict[str, tuple[str, ...]] = {
    "pernicious_anemia": ("D51.0",),
    "atrophic_gastritis": ("K29.4",),
    "gastrectomy": ("Z90.3",),
    "bariatric_surgery": ("Z98.84",),
    "ileal_resection": ("Z90.49", "K91.2"),
    "crohns_disease": ("K50",),
    "celiac_disease": ("K90.0",),
    "autoimmune_thyroid": ("E06.3",),
    "type1_diabetes": ("E10",),
    "sjogren_syndrome": ("M35.0",),
    "down_syndrome": ("Q90",),
    "ckd_stage_3_to_5": ("N18.3", "N18.4", "N18.5", "N18.6"),
    "dialysis": ("Z99.2",),
    "ckd_unstaged": ("N18.9",),
}
