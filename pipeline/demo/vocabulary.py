"""What the extracts write: each site's LOINC codes, test names and unit spellings, the drug
names and codes of EHR medication lists, and the ICD-10-CM codes of the background.

Reference tables check each of these in the acceptance test: every unit's factor is the one in
data/lab_units.csv, every drug name and code is recognised by data/drug_codes.csv as exactly
its drug groups, and every diagnosis code is read as the conditions of `CONDITION_CODES`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


# ---------------------------------------------------------------------------------------------
# Sites: codes, names and units, each unit with its factor to the canonical unit
# (data/lab_units.csv; a test checks they agree) and the precision a lab writes it with.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnitSpec:
    unit: str
    factor: float
    decimals: int  # negative: rounded to tens/hundreds/thousands (cells/uL)
    weight: float = 1.0
    thousands: bool = False  # '1,850'
    loinc: str | None = None  # overrides the site's code for this unit; "" for none
    pad_zero_share: float = 0.0  # share of whole numbers written '154.0'


@dataclass(frozen=True)
class SiteSpec:
    name: str
    file_stem: str
    loinc_share: float  # share of rows that carry the LOINC code
    datetime_share: float  # share of draws written with a time of day
    result_id_share: float
    loinc: Mapping[str, str]
    names: Mapping[str, Sequence[str]]
    units: Mapping[str, Sequence[UnitSpec]]
    reference: Mapping[str, tuple[str, str]] = field(default_factory=dict)


_LOINC = {
    "b12": "2132-9",
    "hgb": "718-7",
    "wbc": "6690-2",
    "anc": "751-8",
    "platelets": "777-3",
    "mcv": "787-2",
    "folate": "2284-8",
    "mma": "13964-2",
    "homocysteine": "13965-9",
    "ldh": "2532-0",
    "creatinine": "2160-0",
    "egfr": "98979-8",
    "neutrophils_pct": "770-8",
}
_PER_UL = 0.001  # cells/uL -> 10^9/L

NORTH = SiteSpec(
    name="north",
    file_stem="labs_site_north",
    loinc_share=1.0,
    datetime_share=0.9,
    result_id_share=0.97,
    loinc=_LOINC,
    names={
        "b12": ["Vitamin B12"],
        "hgb": ["Hemoglobin"],
        "wbc": ["WBC"],
        "anc": ["Neutrophils, Absolute"],
        "platelets": ["Platelet Count"],
        "mcv": ["MCV"],
        "folate": ["Folate, Serum"],
        "mma": ["Methylmalonic Acid, Serum"],
        "homocysteine": ["Homocysteine"],
        "ldh": ["LDH"],
        "creatinine": ["Creatinine"],
        "egfr": ["eGFR"],
        "neutrophils_pct": ["Neutrophils %"],
    },
    units={
        "b12": [UnitSpec("pg/mL", 1, 0, pad_zero_share=0.1)],
        "hgb": [UnitSpec("g/dL", 1, 1)],
        "wbc": [UnitSpec("10*9/L", 1, 1, 0.85), UnitSpec("cells/uL", _PER_UL, -2, 0.15, True)],
        "anc": [UnitSpec("10*9/L", 1, 2, 0.8), UnitSpec("cells/uL", _PER_UL, -1, 0.2, True)],
        "platelets": [UnitSpec("10*9/L", 1, 0, 0.9), UnitSpec("/uL", _PER_UL, -3, 0.1, True)],
        "mcv": [UnitSpec("fL", 1, 1)],
        "folate": [UnitSpec("ng/mL", 1, 1)],
        "mma": [UnitSpec("nmol/L", 1, 0)],
        "homocysteine": [UnitSpec("umol/L", 1, 1)],
        "ldh": [UnitSpec("U/L", 1, 0)],
        "creatinine": [UnitSpec("mg/dL", 1, 2)],
        "egfr": [UnitSpec("mL/min/1.73m2", 1, 0)],
        "neutrophils_pct": [UnitSpec("%", 1, 1)],
    },
    reference={
        "b12": ("232", "1245"),
        "hgb": ("12.0", "17.5"),
        "mcv": ("80", "100"),
        "folate": ("4.0", "20.0"),
        "mma": ("87", "318"),
        "ldh": ("140", "280"),
    },
)
SOUTH = SiteSpec(
    name="south",
    file_stem="labs_site_south",
    loinc_share=0.0,
    datetime_share=0.0,
    result_id_share=0.85,
    loinc={},
    names={
        "b12": ["Vitamin B12", "VIT B12", "B12"],
        "hgb": ["HGB", "Hb"],
        "wbc": ["White Blood Cells", "WBC"],
        "anc": ["Absolute Neutrophil Count", "ANC"],
        "platelets": ["Platelets", "PLT"],
        "mcv": ["MCV"],
        "folate": ["Serum Folate", "Folate"],
        "mma": ["Methylmalonic Acid"],
        "homocysteine": ["Homocysteine", "Total Homocysteine"],
        "ldh": ["Lactate Dehydrogenase"],
        "creatinine": ["Serum Creatinine"],
        "egfr": ["eGFR"],
        "neutrophils_pct": ["Neutrophils %"],
    },
    units={
        "b12": [UnitSpec("pmol/L", 1.35539, 0)],
        "hgb": [UnitSpec("g/L", 0.1, 0)],
        "wbc": [UnitSpec("x10^9/L", 1, 1, 0.8), UnitSpec("x 10^9/L", 1, 1, 0.2)],
        "anc": [UnitSpec("x10^9/L", 1, 1, 0.8), UnitSpec("x 10^9/L", 1, 1, 0.2)],
        "platelets": [UnitSpec("x10^9/L", 1, 0, 0.8), UnitSpec("x 10^9/L", 1, 0, 0.2)],
        "mcv": [UnitSpec("fL", 1, 0)],
        "folate": [UnitSpec("ug/L", 1, 1)],
        "mma": [UnitSpec("nmol/L", 1, 0)],
        "homocysteine": [UnitSpec("umol/L", 1, 1)],
        "ldh": [UnitSpec("IU/L", 1, 0)],
        "creatinine": [UnitSpec("umol/L", 0.0113097, 0)],
        "egfr": [UnitSpec("mL/min/1.73m2", 1, 0)],
        "neutrophils_pct": [UnitSpec("%", 1, 0)],
    },
)
EAST = SiteSpec(
    name="east",
    file_stem="labs_site_east",
    loinc_share=0.5,
    datetime_share=0.5,
    result_id_share=0.9,
    loinc=_LOINC,
    names={
        "b12": ["Cobalamin (Vitamin B12)", "Vitamin B12, Serum"],
        "hgb": ["Haemoglobin"],
        "wbc": ["Leucocytes", "WBC Count"],
        "anc": ["Neut#", "Neutrophils #"],
        "platelets": ["Plt", "Platelet Count"],
        "mcv": ["Mean Cell Volume"],
        "folate": ["Folate"],
        "mma": ["MMA"],
        "homocysteine": ["Hcy"],
        "ldh": ["LD"],
        "creatinine": ["Creatinine"],
        "egfr": ["eGFR (CKD-EPI 2021)"],
        "neutrophils_pct": ["Neut%"],
    },
    units={
        "b12": [
            UnitSpec("ng/L", 1, 0, 0.6),
            UnitSpec("pmol/L", 1.35539, 0, 0.4, loinc="14685-2"),
        ],
        # no code for Hgb in mmol/L: 718-7 is a mass concentration, so the name decides
        "hgb": [UnitSpec("g/dL", 1, 1, 0.85), UnitSpec("mmol/L", 1.611344, 1, 0.15, loinc="")],
        "wbc": [UnitSpec("K/uL", 1, 1, 0.6), UnitSpec("10^3/µL", 1, 1, 0.4)],
        "anc": [UnitSpec("K/uL", 1, 2, 0.6), UnitSpec("10^3/µL", 1, 2, 0.4)],
        "platelets": [UnitSpec("K/uL", 1, 0, 0.6), UnitSpec("10^3/µL", 1, 0, 0.4)],
        "mcv": [UnitSpec("fL", 1, 1, 0.85), UnitSpec("µm3", 1, 1, 0.15)],
        "folate": [UnitSpec("nmol/L", 0.441306, 1, loinc="14732-2")],
        "mma": [UnitSpec("µmol/L", 1000, 3)],
        "homocysteine": [UnitSpec("µmol/L", 1, 1)],
        "ldh": [UnitSpec("U/L", 1, 0, 0.8), UnitSpec("µkat/L", 60, 2, 0.2, loinc="14804-9")],
        "creatinine": [UnitSpec("µmol/L", 0.0113097, 0, loinc="14682-9")],
        "egfr": [UnitSpec("mL/min/1.73m2", 1, 0)],
        "neutrophils_pct": [UnitSpec("%", 1, 1)],
    },
)
SITES: dict[str, SiteSpec] = {"N": NORTH, "S": SOUTH, "E": EAST}


# ---------------------------------------------------------------------------------------------
# Medication and diagnosis vocabulary: what EHR extracts write. Each drug carries the drug
# groups of docs/criteria-semantics.md it belongs to (empty: on no list); a test checks that
# data/drug_codes.csv recognises every name and code as exactly these groups.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Drug:
    groups: frozenset[str]
    names: tuple[tuple[str, str], ...]  # (text as written, RxNorm product code or "")
    rxnorm: str  # ingredient RxNorm code ("": none)
    atc: tuple[str, ...]  # ATC codes seen for it (the first is the current one)
    route: str = "oral"


def _drug(
    groups: str, names: Sequence[str | tuple[str, str]], rxnorm: str, atc: str, route: str = "oral"
) -> Drug:
    pairs = tuple((n, "") if isinstance(n, str) else n for n in names)
    return Drug(frozenset(groups.split()), pairs, rxnorm, tuple(atc.split()), route)


DRUGS: dict[str, Drug] = {
    "metformin": _drug(
        "metformin",
        [
            "MetFORMIN (Glucophage) 500 mg",
            "metformin 500 MG Oral Tablet",
            "Metformin HCl ER 750 mg 24 hr tablet",
            ("24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet", "860975"),
            "METFORMIN HYDROCHLORIDE 1000MG TAB",
            "Glucophage 850 mg tablet",
        ],
        "6809",
        "A10BA02",
    ),
    "sitagliptin_metformin": _drug(
        "metformin",
        ["Janumet 50-1000 mg tablet", "SITAGLIPTIN-METFORMIN 50-500 MG TAB"],
        "",
        "A10BD07",
    ),
    "omeprazole": _drug(
        "ppi",
        [
            "Omeprazole 20 MG Delayed Release Oral Capsule",
            "omeprazole 40mg gastro-resistant caps",
            "PriLOSEC 20 mg capsule",
            "Omeprazole DR 20 mg cap",
        ],
        "7646",
        "A02BC01",
    ),
    "pantoprazole": _drug(
        "ppi",
        [
            "Pantoprazole 40mg EC tab",
            "pantoprazole sodium 40 MG Delayed Release Oral Tablet",
            "PROTONIX 40 MG TBEC",
        ],
        "40790",
        "A02BC02",
    ),
    "esomeprazole": _drug(
        "ppi",
        ["esomeprazole magnesium 40 mg capsule,delayed release", "NexIUM 40 mg capsule"],
        "283742",
        "A02BC05",
    ),
    "lansoprazole": _drug(
        "ppi", ["Lansoprazole 30 mg DR capsule", "Prevacid 15 mg capsule"], "17128", "A02BC03"
    ),
    "rabeprazole": _drug("ppi", ["RABEprazole 20 mg tablet"], "114979", "A02BC04"),
    "famotidine": _drug(
        "h2_blocker",
        ["Famotidine 20 mg tablet", "famotidine 40 MG Oral Tablet", "Pepcid 20 mg"],
        "4278",
        "A02BA03",
    ),
    "ranitidine": _drug(
        "h2_blocker", ["raNITIdine 150 mg tablet", "Zantac 150 mg"], "9143", "A02BA02"
    ),
    "cimetidine": _drug("h2_blocker", ["Cimetidine 400 mg tablet"], "2541", "A02BA01"),
    "colchicine": _drug(
        "colchicine",
        [
            "Colchicine 0.6 mg tablet",
            "Colcrys 0.6 MG Oral Tablet",
            "colchicine 500 microgram tablets",
        ],
        "2683",
        "M04AC01",
    ),
    "pregabalin": _drug(
        "pregabalin",
        ["Pregabalin 75 mg capsule", "Lyrica 75 MG Oral Capsule", "pregabalin 25 mg cap"],
        "187832",
        "N02BF02 N03AX16",
    ),
    "phenobarbital": _drug(
        "phenobarbital",
        [
            "PHENobarbital 30 mg tablet",
            "Phenobarbital 64.8 MG Oral Tablet",
            "Phenobarbitone 30 mg tablets",
        ],
        "8134",
        "N03AA02",
    ),
    "primidone": _drug("primidone", ["Primidone 50 mg tablet", "Mysoline 250 mg"], "", "N03AA03"),
    "topiramate": _drug(
        "topiramate", ["Topiramate 25 mg tablet", "Topamax 50 mg"], "38404", "N03AX11"
    ),
    "methotrexate": _drug(
        "methotrexate", ["Methotrexate 2.5 mg tablet (weekly)"], "6851", "L04AX03"
    ),
    "folic_acid": _drug(
        "folic_acid",
        ["Folic Acid 1 MG Oral Tablet", "FOLIC ACID 5 mg tablets", "folic acid 400 mcg tab"],
        "4511",
        "B03BB01",
    ),
    "cyano_oral": _drug(
        "cyanocobalamin",
        [
            "Cyanocobalamin 1000 mcg tablet",
            "Vitamin B-12 1000 mcg tablet",
            "cyanocobalamin (vitamin B-12) 1,000 mcg tablet",
            "Vitamin B12 1000 MCG Oral Tablet",
        ],
        "11248",
        "B03BA01",
    ),
    "cyano_im": _drug(
        "cyanocobalamin",
        [
            ("Cyanocobalamin 1000 MCG/ML Injectable Solution", "309594"),
            "cyanocobalamin 1,000 mcg/mL injection",
            ("Vitamin B12 5 MG/ML Injectable Solution", "2001499"),
        ],
        "11248",
        "B03BA01",
        "IM",
    ),
    "cyano_nasal": _drug("cyanocobalamin", ["Nascobal 500 mcg/spray nasal spray"], "", "", "nasal"),
    "hydroxo_im": _drug(
        "hydroxocobalamin",
        [
            "Hydroxocobalamin 1 mg/mL injection",
            "HYDROXOCOBALAMIN 1000MCG/ML INJ",
            "Neo-Cytamen 1000 micrograms/1ml",
        ],
        "5514",
        "B03BA03",
        "IM",
    ),
    "methylcobalamin": _drug(
        "methylcobalamin", ["Methylcobalamin 1000 mcg sublingual tablet"], "", "B03BA05"
    ),
    "folbee": _drug(
        "folic_acid cyanocobalamin",
        ["Folic acid-vitamin B6-vitamin B12 (Folbee) 2.5-25-1 mg tablet"],
        "",
        "",
    ),
    # on no list
    "amlodipine": _drug("", ["amLODIPine 5 mg tablet", "Norvasc 10 mg"], "17767", "C08CA01"),
    "atorvastatin": _drug(
        "", ["Atorvastatin 40 MG Oral Tablet", "Lipitor 20 mg"], "83367", "C10AA05"
    ),
    "simvastatin": _drug("", [("Simvastatin 10 MG Oral Tablet", "314231")], "36567", "C10AA01"),
    "lisinopril": _drug("", [("lisinopril 10 MG Oral Tablet", "314076")], "29046", "C09AA03"),
    "levothyroxine": _drug(
        "", ["Levothyroxine 50 mcg tablet", "Synthroid 75 mcg"], "10582", "H03AA01"
    ),
    "gabapentin": _drug("", ["Gabapentin 300 mg capsule", "Neurontin 300 mg"], "25480", "N02BF01"),
    "sertraline": _drug("", ["Sertraline 50 mg tablet"], "36437", "N06AB06"),
    "aspirin": _drug("", ["Aspirin 81 mg EC tablet"], "1191", "B01AC06"),
    "allopurinol": _drug("", ["Allopurinol 100 mg tablet"], "519", "M04AA01"),
    "vitamin_d": _drug("", ["Cholecalciferol (Vitamin D3) 1000 unit tablet"], "", "A11CC05"),
    "insulin": _drug(
        "", ["Insulin Glargine 100 UNIT/ML Injectable Solution [Lantus]"], "", "A10AE04", "SC"
    ),
    "vonoprazan": _drug("", ["Vonoprazan (Voquezna) 20 mg tablet"], "", "A02BC08"),
}
# Only these drugs are ever written with a code and no name: their codes are on the list.
_CODE_ONLY = frozenset(
    [
        "metformin",
        "omeprazole",
        "pantoprazole",
        "esomeprazole",
        "famotidine",
        "colchicine",
        "pregabalin",
        "phenobarbital",
        "folic_acid",
        "cyano_oral",
        "cyano_im",
        "hydroxo_im",
        "amlodipine",
        "atorvastatin",
        "lisinopril",
    ]
)

# ICD-10-CM codes the background uses (key: without the dot), with descriptions; the oracle
# decides by CONDITION_CODES which of them count.
_DIAGNOSES: dict[str, str] = {
    "E119": "Type 2 diabetes mellitus without complications",
    "E1165": "Type 2 diabetes mellitus with hyperglycemia",
    "E1122": "Type 2 diabetes mellitus with diabetic chronic kidney disease",
    "E109": "Type 1 diabetes mellitus without complications",
    "K219": "Gastro-esophageal reflux disease without esophagitis",
    "K210": "Gastro-esophageal reflux disease with esophagitis",
    "I10": "Essential (primary) hypertension",
    "E785": "Hyperlipidemia, unspecified",
    "E039": "Hypothyroidism, unspecified",
    "E063": "Autoimmune thyroiditis",
    "M109": "Gout, unspecified",
    "G40909": "Epilepsy, unspecified, not intractable, without status epilepticus",
    "G629": "Polyneuropathy, unspecified",
    "M797": "Fibromyalgia",
    "M069": "Rheumatoid arthritis, unspecified",
    "K5090": "Crohn's disease, unspecified, without complications",
    "K5000": "Crohn's disease of small intestine without complications",
    "K5190": "Ulcerative colitis, unspecified, without complications",
    "K900": "Celiac disease",
    "K909": "Intestinal malabsorption, unspecified",
    "K2940": "Chronic atrophic gastritis without bleeding",
    "K2970": "Gastritis, unspecified, without bleeding",
    "D510": "Vitamin B12 deficiency anemia due to intrinsic factor deficiency",
    "D51": "Vitamin B12 deficiency anemia",
    "D519": "Vitamin B12 deficiency anemia, unspecified",
    "E538": "Deficiency of other specified B group vitamins",
    "Z9884": "Bariatric surgery status",
    "Z980": "Intestinal bypass and anastomosis status",
    "Z903": "Acquired absence of stomach [part of]",
    "Z9049": "Acquired absence of other specified parts of digestive tract",
    "K912": "Postsurgical malabsorption, not elsewhere classified",
    "M3500": "Sjogren syndrome, unspecified",
    "M351": "Other overlap syndromes",
    "Q909": "Down syndrome, unspecified",
    "N182": "Chronic kidney disease, stage 2 (mild)",
    "N1830": "Chronic kidney disease, stage 3 unspecified",
    "N1831": "Chronic kidney disease, stage 3a",
    "N1832": "Chronic kidney disease, stage 3b",
    "N184": "Chronic kidney disease, stage 4 (severe)",
    "N185": "Chronic kidney disease, stage 5",
    "N189": "Chronic kidney disease, unspecified",
}


def _with_dot(key: str) -> str:
    return key if len(key) <= 3 else f"{key[:3]}.{key[3:]}"
