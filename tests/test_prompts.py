"""Prompt templates: rendering, dataset overrides, errors naming the file, import of the original format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfexplain.cli import main
from selfexplain.errors import ConfigError, InputError
from selfexplain.prompts import Template, available_prompts, load_template
from selfexplain.sce.prompt_import import convert_format_string
from selfexplain.sce.prompts import first_pass_fields, followup_fields
from selfexplain.simulatability.prompts import (
    PREDICTOR_TEMPLATES,
    REFERENCE_TEMPLATES,
    predictor_fields,
    reference_fields,
)
from selfexplain.tabular.features import load_dataset_spec
from tests.conftest import REPO

PROMPTS = REPO / "config" / "prompts" / "sce"


def test_shipped_templates_render_for_every_dataset():
    names = available_prompts(PROMPTS)
    assert {"first_pass", "standard", "minimal", "minimal_reasoning", "minimal_l1", "minimal_l2"} <= set(names)
    for dataset in ("income", "house_prices", "heart_disease"):
        spec = load_dataset_spec(dataset)
        text = load_template(PROMPTS, "first_pass", dataset).render(first_pass_fields(spec, "- a row"))
        assert "- a row" in text and '{"answer": ""}' in text and json.dumps(list(spec.options)) in text
        for name in ("standard", "minimal", "minimal_reasoning", "minimal_l1", "minimal_l2"):
            text = load_template(PROMPTS, name, dataset).render(followup_fields(spec, spec.options[0]))
            assert spec.options[0] in text and "$" not in text.replace(spec.options[0], "")
            assert json.dumps({k: "" for k in spec.keys}) in text


def test_minimal_l1_states_the_grid_mads():
    spec = load_dataset_spec("heart_disease")
    text = load_template(PROMPTS, "minimal_l1", "heart_disease").render(followup_fields(spec, "Heart disease"))
    assert "age: 15; sex: counts 0 if unchanged and 1 if changed; systolic_bp: 20; total_cholesterol: 45" in text


def test_dataset_specific_template_wins(tmp_path):
    (tmp_path / "mine.txt").write_text("generic ${target}")
    (tmp_path / "mine.income.txt").write_text("income only ${target}")
    assert load_template(tmp_path, "mine", "income").text.startswith("income only")
    assert load_template(tmp_path, "mine", "heart_disease").text.startswith("generic")
    with pytest.raises(ConfigError, match=r"no template 'other'.*available: \['mine'\]"):
        load_template(tmp_path, "other", "income")


def test_unknown_placeholder_names_the_file(tmp_path):
    (tmp_path / "bad.txt").write_text("Flip to ${targt}")
    template = load_template(tmp_path, "bad", "income")
    with pytest.raises(ConfigError, match=r"bad\.txt: unknown placeholder \$targt"):
        template.render(followup_fields(load_dataset_spec("income"), "Above $50,000"))


def test_convert_format_string():
    original = 'Data:\n{description}\nCosts $5. Reply {{"answer": ""}} to get {complement}.'
    assert (
        convert_format_string(original, "x")
        == 'Data:\n${description}\nCosts $$5. Reply {"answer": ""} to get ${target}.'
    )
    with pytest.raises(InputError, match=r"unknown placeholder \{who\}"):
        convert_format_string("Hello {who}", "datasets.json: income")


def test_import_prompts_cli_writes_usable_templates(tmp_path):
    datasets = {
        "income": {
            "filepath": "data/income",
            "standard_prompt_template": 'Row:\n{description}\n{{"answer": ""}}',
            "followup_template": "Now make it {complement}. Costs $1.",
        },
        "heart_disease_minimal": {
            "filepath": "data/heart_disease",
            "standard_prompt_template": "{description}",
            "followup_template": "Minimal flip to {complement}.",
        },
    }
    path = tmp_path / "datasets.json"
    path.write_text(json.dumps(datasets))
    out = tmp_path / "prompts"
    assert main(["sce", "import-prompts", str(path), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "original.income.txt",
        "original_first_pass.income.txt",
        "original_minimal.heart_disease.txt",
        "original_minimal_first_pass.heart_disease.txt",
    ]
    spec = load_dataset_spec("income")
    text = load_template(out, "original", "income").render(followup_fields(spec, "Above $50,000"))
    assert text == "Now make it Above $50,000. Costs $1."
    first = load_template(out, "original_first_pass", "income").render(first_pass_fields(spec, "- age 40"))
    assert first == 'Row:\n- age 40\n{"answer": ""}'


def test_import_prompts_reports_bad_files(tmp_path, capsys):
    path = tmp_path / "datasets.json"
    path.write_text(json.dumps({"titanic": {"standard_prompt_template": "", "followup_template": ""}}))
    assert main(["sce", "import-prompts", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "cannot tell which dataset" in capsys.readouterr().err
    assert main(["sce", "import-prompts", str(tmp_path / "missing.json")]) == 2


# -- placeholders checked against what the study fills (issue 9) -------------------------------------------------
def _template(text, name="t"):
    return Template(name=name, path=Path(f"prompts/{name}.txt"), text=text)


def test_placeholders_in_order_of_first_use():
    assert _template("$a ${b} $$c ${a} $d").placeholders() == ["a", "b", "d"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "config.x: prompts/t.txt: the template is empty; write the prompt text into it"),
        (" \n\t\n", "config.x: prompts/t.txt: the template is empty; write the prompt text into it"),
        (
            "Pay $5 for ${target}",
            "config.x: prompts/t.txt line 1, column 5: a '$' that starts no placeholder; write $$ for a literal "
            "dollar sign, ${name} for a placeholder",
        ),
        (
            "${target}\n  and ${ target}",
            "config.x: prompts/t.txt line 2, column 7: a '$' that starts no placeholder; write $$ for a literal "
            "dollar sign, ${name} for a placeholder",
        ),
        (
            "Make it $$ ${target},\nnot ${targt}",
            "config.x: prompts/t.txt line 2, column 5: unknown placeholder ${targt}; this template may use "
            "${record}, ${target}",
        ),
    ],
)
def test_check_names_the_key_file_and_position(text, message):
    with pytest.raises(ConfigError) as info:
        _template(text).check({"target", "record"}, key="config.x")
    assert str(info.value) == message


def test_check_accepts_a_good_template():
    _template("Cost: $$5 for ${record} -> $target").check(["record", "target"])


def test_shipped_templates_pass_their_studys_check():
    spec = load_dataset_spec("income")
    for name in available_prompts(PROMPTS):
        fields = first_pass_fields(spec, "") if name == "first_pass" else followup_fields(spec, spec.options[0])
        load_template(PROMPTS, name, "income").check(fields)
    sim = REPO / "config" / "prompts" / "simulatability"
    for name in REFERENCE_TEMPLATES.values():
        load_template(sim, name, "income").check(reference_fields("income", ""))
    for name in PREDICTOR_TEMPLATES.values():
        load_template(sim, name, "moral_machines").check(predictor_fields("moral_machines", "", "", ""))


def test_render_names_the_stray_dollar():
    with pytest.raises(ConfigError, match=r"t\.txt line 1, column 5: a '\$' that starts no placeholder"):
        _template("Pay $5 for ${target}").render({"target": "x"})
