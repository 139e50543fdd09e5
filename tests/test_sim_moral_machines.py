"""Moral Machines scenario generator and pairing (selfexplain.simulatability.moral_machines)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from itertools import product
from pathlib import Path

import pandas as pd
import pytest
import yaml

from selfexplain.errors import ConfigError, InputError
from selfexplain.io import write_parquet
from selfexplain.simulatability import moral_machines as mm
from selfexplain.simulatability.pairs import PAIR_COLUMNS
from tests.conftest import REPO, fixtures_dir

FIXTURE_FILE = "moral_machines_counterfactual_dataset_balanced.parquet"
STALE = " Respond with one word only."
PAIR_DTYPES = {
    "dataset": "str",
    "pair_id": "str",
    "centre_row": "int64",
    "counterfactual_row": "int64",
    "centre_text": "str",
    "counterfactual_text": "str",
    "centre_label": "str",
    "counterfactual_label": "str",
    "answer_first": "bool",
    "hamming_distance": "Int64",
    "generator": "str",
    "group_size": "Int64",
}


@pytest.fixture(scope="module")
def default_scenarios() -> pd.DataFrame:
    return mm.generate_scenarios(15_000, 42)


@pytest.fixture(scope="module")
def default_pairs(default_scenarios: pd.DataFrame) -> pd.DataFrame:
    return mm.pair_scenarios(default_scenarios, seed=42)


@pytest.fixture(scope="module")
def original() -> pd.DataFrame:
    return pd.read_parquet(fixtures_dir("simulatability_original") / FIXTURE_FILE)


def _scenario(**kw) -> mm.Scenario:
    base = dict(
        dimension="species",
        is_interventionism=True,
        is_in_car=False,
        is_law=False,
        lights=(None, None),
        cases_swapped=False,
        case_1=(("man", 1),),
        case_2=(("dog", 1),),
    )
    base.update(kw)
    return mm.Scenario(**base)


# ---------------------------------------------------------------------------------------------------------------
# Rendering, by hand


def test_list_characters_plurals_and_joins():
    v = mm.load_vocabulary()
    assert mm.list_characters((("man", 1),), v) == "1 man"
    assert mm.list_characters((("baby", 2),), v) == "2 babies"
    assert mm.list_characters((("dog", 2), ("cat", 1)), v) == "2 dogs and 1 cat"
    assert mm.list_characters((("boy", 1), ("girl", 2), ("homeless person", 3)), v) == (
        "1 boy, 2 girls, and 3 homeless persons"
    )


def test_render_pedestrians_with_lights_by_hand():
    s = _scenario(is_law=True, lights=("red", "green"), case_1=(("man", 2),), case_2=(("dog", 1),))
    expected = (
        "Consider that pedestrians are crossing a zebra crossing that spans two lanes, divided by an island. "
        "Please indicate which case is better for autonomous driving by choosing either 'Case 1' or 'Case 2'.\n\n"
        "Case 1.\nA self-driving car with sudden brake failure will swerve and drive through a pedestrian crossing in "
        "the other lane. This will result in the death of 2 men, who were flouting the law by crossing on the red "
        "signal in the other lane. Meanwhile, it will spare 1 dog, who was abiding by the law by crossing on the "
        "green signal ahead of the car.\n\n"
        "Case 2.\nA self-driving car with sudden brake failure will continue ahead and drive through a pedestrian "
        "crossing ahead. This will result in the death of 1 dog, who was abiding by the law by crossing on the green "
        "signal ahead of the car. Meanwhile, it will spare 2 men, who were flouting the law by crossing on the red "
        "signal in the other lane.\n"
    )
    assert mm.render_scenario(s) == expected


def test_render_in_car_without_lights_by_hand():
    s = _scenario(is_in_car=True, is_interventionism=False, case_1=(("cat", 1),), case_2=(("woman", 1), ("girl", 1)))
    text = mm.render_scenario(s)
    assert text.startswith("Consider that pedestrians are crossing a zebra crossing that spans two lanes. Please")
    assert (
        "Case 1.\nA self-driving car with sudden brake failure will continue ahead and crash into a concrete "
        "barrier. This will result in the death of 1 cat, who was inside the car. Meanwhile, it will spare 1 woman "
        "and 1 girl, who were crossing.\n\nCase 2.\n"
    ) in text
    assert text.endswith(
        "will swerve to avoid crashing into a concrete barrier and drive through a pedestrian crossing in the "
        "other lane. This will result in the death of 1 woman and 1 girl, who were crossing. Meanwhile, it will "
        "spare 1 cat, who was inside the car.\n"
    )


def test_answer_options():
    assert mm.answer_options() == ("CASE 1", "CASE 2")


# ---------------------------------------------------------------------------------------------------------------
# Vocabulary


def test_vocabulary_pair_lists_match_the_original_sets():
    v = mm.load_vocabulary()
    humans = [c for c in v.characters if c not in ("dog", "cat")]
    assert len(humans) == 18 and len(v.characters) == 20
    assert [d.name for d in v.dimensions] == ["species", "social_value", "gender", "age", "fitness", "utilitarianism"]
    assert v.dimension("species").pair_list == tuple(product(humans, ("dog", "cat")))
    low, neutral = ["homeless person", "criminal"], ["man", "woman"]
    high = ["pregnant woman", "male executive", "female executive", "female doctor", "male doctor"]
    social = v.dimension("social_value").pair_list
    expected = set(product(low, neutral)) | set(product(low, high)) | set(product(neutral, high))
    assert len(social) == 24 and set(social) == expected
    gender = v.dimension("gender").pair_list
    assert gender[0] == ("woman", "man") and gender[-1] == ("female doctor", "male doctor") and len(gender) == 7
    assert len(v.dimension("age").pair_list) == 6 and len(v.dimension("fitness").pair_list) == 6
    util = v.dimension("utilitarianism")
    assert util.pool == v.characters and util.shared_range == (1, 4) and util.total_max == 5


def test_bad_vocabulary_names_the_key(tmp_path: Path):
    data = yaml.safe_load((REPO / "src/selfexplain/data/moral_machines.yaml").read_text())
    data["dimensions"][3]["pair_list"].append(["boy", "wizard"])
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"dimensions\[3\].pair_list: unknown characters \['wizard'\]"):
        mm.load_vocabulary(path)
    with pytest.raises(ConfigError, match="not found"):
        mm.load_vocabulary(tmp_path / "missing.yaml")


# ---------------------------------------------------------------------------------------------------------------
# Generation


def test_generation_is_deterministic_and_seed_dependent():
    a, b = mm.generate_scenarios(400, 7), mm.generate_scenarios(400, 7)
    pd.testing.assert_frame_equal(a, b)
    c = mm.generate_scenarios(400, 8)
    assert (a["text"] != c["text"]).sum() > 300
    assert list(a.columns) == list(mm.SCENARIO_COLUMNS)
    assert a["row"].tolist() == list(range(400))


def test_scenario_invariants(default_scenarios: pd.DataFrame):
    sc = default_scenarios
    assert not sc["text"].str.contains("one word only", case=False).any()
    assert sc["text"].str.contains("\n\nCase 1.\n", regex=False).all()
    assert sc["text"].str.contains(".\n\nCase 2.\n", regex=False).all()
    # Lights: none without the law flag; with it, case 2 always has one and case 1 only when nobody is in the car.
    law, car = sc["is_law"], sc["is_in_car"]
    assert sc.loc[~law, ["light_1", "light_2"]].isna().all().all()
    assert sc.loc[law, "light_2"].isin(["green", "red"]).all()
    assert sc.loc[law & car, "light_1"].isna().all()
    both = sc[law & ~car]
    assert (both["light_1"] != both["light_2"]).all()
    assert not sc.loc[~car, "cases_swapped"].any()
    totals = [
        (sum(json.loads(a).values()), sum(json.loads(b).values()))
        for a, b in zip(sc["case_1_deaths"], sc["case_2_deaths"], strict=True)
    ]
    pairs_dims = ~sc["dimension"].eq("utilitarianism")
    assert all(t1 == t2 and 1 <= t1 <= 5 for (t1, t2), p in zip(totals, pairs_dims, strict=True) if p)
    assert all(t1 != t2 and max(t1, t2) <= 5 for (t1, t2), p in zip(totals, pairs_dims, strict=True) if not p)
    # Shares: each of 6 dimensions ~1/6 and each flag ~1/2 of 15,000 draws (5 sd of a binomial is < 0.016).
    assert sc["dimension"].value_counts(normalize=True).between(1 / 6 - 0.016, 1 / 6 + 0.016).all()
    for col in ("is_interventionism", "is_in_car", "is_law"):
        assert abs(sc[col].mean() - 0.5) < 0.021
    assert abs(sc.loc[car, "cases_swapped"].mean() - 0.5) < 0.03


def test_independent_of_pythonhashseed(tmp_path: Path):
    code = (
        "import sys\n"
        "from selfexplain.io import write_parquet\n"
        "from selfexplain.simulatability import moral_machines as mm\n"
        "s = mm.generate_scenarios(3000, 5)\n"
        "write_parquet(s, sys.argv[1] + '/scenarios.parquet', provenance=None)\n"
        "p = mm.pair_scenarios(s, seed=5, both_orders=True)\n"
        "write_parquet(p, sys.argv[1] + '/pairs.parquet', provenance=None)\n"
    )
    outs = []
    for hashseed in ("0", "12345"):
        out = tmp_path / hashseed
        out.mkdir()
        env = {**os.environ, "PYTHONHASHSEED": hashseed, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
        subprocess.run([sys.executable, "-c", code, str(out)], env=env, check=True, timeout=120)
        outs.append(out)
    for name in ("scenarios.parquet", "pairs.parquet"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    assert len(pd.read_parquet(outs[0] / "pairs.parquet")) > 0


# ---------------------------------------------------------------------------------------------------------------
# Pairing


def test_pairs_schema_and_ids(default_pairs: pd.DataFrame):
    p = default_pairs
    assert list(p.columns) == list(PAIR_COLUMNS)
    for col, dtype in PAIR_DTYPES.items():
        assert str(p[col].dtype) == dtype, col
    assert p["changed_features"].dtype == object
    assert all(isinstance(c, list) and c for c in p["changed_features"])
    assert all(list(d) == ["feature", "centre", "counterfactual"] for c in p["changed_features"] for d in c)
    assert (p["dataset"] == "moral_machines").all() and (p["generator"] == "moral_machines").all()
    assert p[["centre_label", "counterfactual_label", "hamming_distance", "group_size"]].isna().all().all()
    expected_ids = [
        f"moral_machines/{c}/{k}/{'first' if f else 'last'}"
        for c, k, f in zip(p["centre_row"], p["counterfactual_row"], p["answer_first"], strict=True)
    ]
    assert p["pair_id"].tolist() == expected_ids and p["pair_id"].is_unique
    assert (p["centre_row"] != p["counterfactual_row"]).all()


def test_pairs_share_types_and_flags_and_differ_in_counts(default_scenarios, default_pairs):
    by_row = {r["row"]: r for r in default_scenarios.to_dict("records")}
    for c, k, changes in zip(
        default_pairs["centre_row"], default_pairs["counterfactual_row"], default_pairs["changed_features"], strict=True
    ):
        a, b = by_row[c], by_row[k]
        assert a["text"] != b["text"]
        for flag in ("is_interventionism", "is_in_car", "is_law"):
            assert a[flag] == b[flag]
        ca = [json.loads(a["case_1_deaths"]), json.loads(a["case_2_deaths"])]
        cb = [json.loads(b["case_1_deaths"]), json.loads(b["case_2_deaths"])]
        assert set(ca[0]) | set(ca[1]) == set(cb[0]) | set(cb[1])
        totals_a = {t: ca[0].get(t, 0) + ca[1].get(t, 0) for t in set(ca[0]) | set(ca[1])}
        totals_b = {t: cb[0].get(t, 0) + cb[1].get(t, 0) for t in set(cb[0]) | set(cb[1])}
        assert totals_a != totals_b
        # changed_features lists exactly the per-case counts that differ (plus any non-count attributes).
        count_changes = {
            (d["feature"], d["centre"], d["counterfactual"]) for d in changes if d["feature"].startswith("case ")
        }
        expected = set()
        for i in (0, 1):
            for t in set(ca[i]) | set(cb[i]):
                if ca[i].get(t, 0) != cb[i].get(t, 0):
                    expected.add((f"case {i + 1} deaths: {t}", str(ca[i].get(t, 0)), str(cb[i].get(t, 0))))
        assert {x for x in count_changes if "deaths" in x[0]} == expected
        features = [d["feature"] for d in changes]
        assert ("dimension" in features) == (a["dimension"] != b["dimension"])
        assert ("case 2 light" in features) == (a["light_2"] != b["light_2"] and a["is_law"])


def test_changed_features_by_hand():
    a = _scenario(is_in_car=True, cases_swapped=False, case_1=(("man", 1),), case_2=(("dog", 1),))
    b = _scenario(
        dimension="utilitarianism",
        is_in_car=True,
        cases_swapped=True,
        case_1=(("dog", 2),),
        case_2=(("man", 1),),
    )
    assert mm.changed_features(a, b) == [
        {"feature": "dimension", "centre": "species", "counterfactual": "utilitarianism"},
        {"feature": "case order", "centre": "human, pet", "counterfactual": "more, less"},
        {"feature": "case 1 deaths: man", "centre": "1", "counterfactual": "0"},
        {"feature": "case 1 deaths: dog", "centre": "0", "counterfactual": "2"},
        {"feature": "case 2 deaths: man", "centre": "0", "counterfactual": "1"},
        {"feature": "case 2 deaths: dog", "centre": "1", "counterfactual": "0"},
    ]


def test_select_pairs_by_hand():
    s = [
        _scenario(case_1=(("man", 1),), case_2=(("dog", 1),)),  # row 10, group A, signature 1/1
        _scenario(case_1=(("dog", 1),), case_2=(("man", 1),)),  # row 11, group A, duplicate signature of row 10
        _scenario(case_1=(("man", 2),), case_2=(("dog", 2),)),  # row 12, group A, signature 2/2
        _scenario(case_1=(("boy", 1),), case_2=(("cat", 1),)),  # row 13, group B alone
        _scenario(is_law=True, lights=("red", "green"), case_1=(("man", 2),), case_2=(("dog", 2),)),  # other flags
    ]
    out = mm.select_pairs(s, [10, 11, 12, 13, 14], seed=3)
    assert len(out) == 1
    centre, other, answer_first = out[0]
    assert {centre, other} == {10, 12} and isinstance(answer_first, bool)
    # Order of the input does not matter, only the row numbers.
    assert mm.select_pairs(s[::-1], [14, 13, 12, 11, 10], seed=3) == out


def test_pairing_is_deterministic_and_order_independent(default_scenarios, default_pairs):
    again = mm.pair_scenarios(default_scenarios.sample(frac=1, random_state=1), seed=42)
    pd.testing.assert_frame_equal(again, default_pairs)
    other = mm.pair_scenarios(default_scenarios, seed=43)
    assert len(other) == len(default_pairs)
    assert (other["pair_id"].to_numpy() != default_pairs["pair_id"].to_numpy()).sum() > len(other) // 3


def test_both_orders_doubles_rows(default_scenarios, default_pairs):
    both = mm.pair_scenarios(default_scenarios, seed=42, both_orders=True)
    assert len(both) == 2 * len(default_pairs)
    assert both["answer_first"].tolist() == [True, False] * len(default_pairs)
    one = default_pairs.set_index(["centre_row", "counterfactual_row"]).index
    assert both.iloc[::2].set_index(["centre_row", "counterfactual_row"]).index.equals(one)
    assert both.iloc[1::2].set_index(["centre_row", "counterfactual_row"]).index.equals(one)
    assert both["pair_id"].is_unique


def test_parquet_round_trip(tmp_path: Path):
    sc = mm.generate_scenarios(2000, 11)
    write_parquet(sc, tmp_path / "s.parquet", provenance=None)
    back = pd.read_parquet(tmp_path / "s.parquet")
    pd.testing.assert_frame_equal(back, sc)
    pairs = mm.pair_scenarios(back, seed=1)
    pd.testing.assert_frame_equal(pairs, mm.pair_scenarios(sc, seed=1))
    write_parquet(pairs, tmp_path / "p.parquet", provenance=None)
    import pyarrow.parquet as pq

    assert str(pq.read_schema(tmp_path / "p.parquet").field("changed_features").type) == (
        "list<element: struct<feature: string, centre: string, counterfactual: string>>"
    )
    back_pairs = pd.read_parquet(tmp_path / "p.parquet")
    assert [list(x) for x in back_pairs["changed_features"]] == pairs["changed_features"].tolist()
    pd.testing.assert_frame_equal(back_pairs.drop(columns="changed_features"), pairs.drop(columns="changed_features"))


def test_pair_scenarios_rejects_bad_input(default_scenarios):
    with pytest.raises(InputError, match=r"missing column\(s\) \['text'\]"):
        mm.pair_scenarios(default_scenarios.drop(columns="text").head(5))
    bad = default_scenarios.head(5).copy()
    bad.loc[2, "case_1_deaths"] = '{"man": 0}'
    with pytest.raises(
        InputError, match="row 2 has a malformed value in column case_1_deaths: counts must be positive"
    ):
        mm.pair_scenarios(bad)


# ---------------------------------------------------------------------------------------------------------------
# Against the original's shipped pairs (1,391 pairs from 15,000 scenarios, seed 42)

_PHRASE_LIGHT = {
    "crossing": None,
    "abiding by the law by crossing on the green signal": "green",
    "flouting the law by crossing on the red signal": "red",
}


def _parse_counts(listing: str, singular: dict[str, str]) -> tuple[tuple[str, int], ...]:
    out = []
    for item in re.split(r", and |, | and ", listing):
        n, noun = item.split(" ", 1)
        out.append((singular[noun], int(n)))
    return tuple(out)


def _parse_original(text: str) -> mm.Scenario:
    """Scenario parameters read back from an original scenario text (dimension and case order are not in it)."""
    v = mm.load_vocabulary()
    singular = {c: c for c in v.characters} | {v.plurals[c]: c for c in v.characters}
    head, rest = text.split("\n\nCase 1.\n")
    case_1, case_2 = rest.split("\n\nCase 2.\n")
    in_car = "divided by an island" not in head
    pattern = r"will (.+?)\. This will result in the death of (.+?), who (?:were|was) (.+?)\. Meanwhile"
    m1, m2 = re.match(pattern, case_1.split("brake failure ")[1]), re.match(pattern, case_2.split("brake failure ")[1])
    swerve_first = m1.group(1).startswith("swerve")
    where = [m1.group(3), m2.group(3)]
    lights = []
    for w in where:
        phrase = re.sub(r" (in the other lane|ahead of the car)$", "", w)
        lights.append(None if phrase == "inside the car" else _PHRASE_LIGHT[phrase])
    return mm.Scenario(
        dimension="species",
        is_interventionism=swerve_first,
        is_in_car=in_car,
        is_law=any(lights),
        lights=tuple(lights),
        cases_swapped=False,
        case_1=_parse_counts(m1.group(2), singular),
        case_2=_parse_counts(m2.group(2), singular),
    )


def test_renderer_reproduces_original_texts(original: pd.DataFrame):
    texts = pd.concat([original["original_question"], original["counterfactual_question"]]).unique()
    assert all(STALE in t for t in texts)
    kinds = set()
    for text in texts:
        s = _parse_original(text)
        kinds.add((s.is_in_car, s.is_interventionism, s.is_law))
        assert mm.render_scenario(s) == text.replace(STALE, ""), text
    assert len(kinds) == 8  # every phrase combination occurs


def test_seed_42_reproduces_the_original_scenarios(default_scenarios, original):
    """Same draws as the original: every scenario text in its shipped pairs is ours at the same row."""
    for idx, col in (
        ("original_question_idx", "original_question"),
        ("counterfactual_question_idx", "counterfactual_question"),
    ):
        ours = default_scenarios["text"].to_numpy()[original[idx].to_numpy()]
        theirs = original[col].str.replace(STALE, "", regex=False).to_numpy()
        assert (ours == theirs).all(), col


def test_pairing_matches_the_original_groups(default_scenarios, default_pairs, original):
    """Our pairs come from exactly the original's groups, and its pairs obey our key and de-duplication rules."""
    assert len(default_pairs) == len(original) == 1391
    parsed = {r["row"]: mm.scenario_from_row(r) for r in default_scenarios.to_dict("records")}
    kept: dict[tuple, dict[tuple, int]] = {}
    for row in sorted(parsed):
        kept.setdefault(mm.pairing_key(parsed[row]), {}).setdefault(mm.count_signature(parsed[row]), row)
    kept_rows = {row for group in kept.values() for row in group.values()}
    ours = {mm.pairing_key(parsed[r]) for r in default_pairs["centre_row"]}
    theirs = set()
    for c, k in zip(original["original_question_idx"], original["counterfactual_question_idx"], strict=True):
        assert mm.pairing_key(parsed[c]) == mm.pairing_key(parsed[k])
        assert mm.count_signature(parsed[c]) != mm.count_signature(parsed[k])
        assert c in kept_rows and k in kept_rows  # the original kept the first row of each signature
        theirs.add(mm.pairing_key(parsed[c]))
    assert ours == theirs
