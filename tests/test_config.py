"""Bad configs and catalogs fail at parse time with a message that names the key and lists what is allowed."""

from __future__ import annotations

import copy
import re
import shutil

import pytest
import yaml

from selfexplain.config import load_catalog, load_yaml, validate_config
from selfexplain.errors import ConfigError
from tests.conftest import REPO

SCHEMAS = REPO / "workflow" / "schemas"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    shutil.copytree(REPO / "config", tmp_path / "config")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _load(name="config/config.yaml"):
    return yaml.safe_load((REPO / name).read_text())


def _validate(config):
    return validate_config(copy.deepcopy(config), SCHEMAS / "config.schema.yaml", SCHEMAS / "catalog.schema.yaml")


@pytest.mark.parametrize("name", ["config/config.yaml", "config/paper.yaml"])
def test_shipped_configs_are_valid(workdir, name):
    config, catalog = _validate(_load(name))
    assert set(config["sce"]["models"]) <= set(catalog)


def test_defaults_are_filled(workdir):
    config, _ = _validate({"sce": {"models": ["synthetic-exact"]}})
    assert config["studies"] == ["sce", "simulatability"]
    assert config["sce"]["datasets"] == ["income", "house_prices", "heart_disease"]
    assert config["sce"]["bootstrap"] == {"resamples": 1000, "seed": 0}
    assert config["journal_dir"] == "journal"
    sim = config["simulatability"]
    assert sim["datasets"] == ["attrition", "heart_disease", "income", "moral_machines"]
    assert sim["hamming"] == {
        "max_distance": 2,
        "min_group_size": 5,
        "max_group_size": 10,
        "max_imbalance": 0.3,
        "seed": 42,
        "max_centres": {},
        "cap_seed": 42,
    }
    assert sim["eval_set"] == {"size": 1000, "unit": "rows", "seed": 42}
    assert sim["moral_machines"] == {"scenarios": 15000, "seed": 42, "both_orders": False}


def test_a_study_left_out_needs_no_models(workdir):
    config, _ = _validate({"studies": ["simulatability"]})
    assert config["sce"]["models"] == []


def test_a_study_left_out_is_checked_for_shape_not_names(workdir):
    """Running sce with another catalog must not fail on the simulatability section's default model names."""
    config = {"studies": ["sce"], "sce": {"models": ["synthetic-exact"]}, "simulatability": {"references": ["gpt-7"]}}
    _validate(config)
    config["simulatability"]["eval_set"] = {"unit": "centres"}
    with pytest.raises(ConfigError, match=r"config\.simulatability\.eval_set\.unit: 'centres' is not one of"):
        _validate(config)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.update(modles=["x"]), r"config: Additional properties.*'modles'.*allowed keys: \['catalog'"),
        (
            lambda c: c.update(studies=["sce", "sim"]),
            r"config\.studies\[1\]: 'sim' is not one of \['sce', 'simulatability'\]",
        ),
        (lambda c: c["sce"].update(seed="x"), r"config\.sce\.seed: 'x' is not of type 'integer'"),
        (lambda c: c["sce"].update(distance="cosine"), r"config\.sce\.distance: 'cosine' is not one of"),
        (
            lambda c: c["sce"].update(models=["gpt-5"]),
            r"config\.sce\.models\[0\]: 'gpt-5' is not one of \[.*'synthetic-exact'",
        ),
        (
            lambda c: c["sce"].update(datasets=["income", "titanic"]),
            r"config\.sce\.datasets\[1\]: 'titanic' is not one of \['heart_disease', 'house_prices', 'income'\]",
        ),
        (
            lambda c: c["sce"].update(prompts=["minimalist"]),
            r"config\.sce\.prompts\[0\]: 'minimalist' is not one of \[",
        ),
        (lambda c: c["sce"]["bootstrap"].update(resamples=-1), r"config\.sce\.bootstrap\.resamples: -1 is less than"),
        (lambda c: c["sce"].update(models=[]), r"config\.sce\.models: name at least one catalog model"),
        (
            lambda c: c["simulatability"].update(datasets=["income", "titanic"]),
            r"config\.simulatability\.datasets\[1\]: 'titanic' is not one of \['attrition', 'bank_marketing', "
            r"'breast_cancer_recurrence', 'heart_disease', 'income', 'moral_machines', 'pima_diabetes'\]",
        ),
        (
            lambda c: c["simulatability"]["raw"].update(sources={"titanic": {"kind": "url"}}),
            r"config\.simulatability\.raw\.sources: 'titanic' is not one of \['attrition'",
        ),
        (
            lambda c: c["simulatability"]["raw"].update(sources={"income": {"kind": "ftp"}}),
            r"config\.simulatability\.raw\.sources\.income\.kind: 'ftp' is not one of \['url', 'package', 'file'\]",
        ),
        (
            lambda c: c["simulatability"]["raw"].update(sources={"income": {"kind": "file"}}),
            r"config\.simulatability\.raw\.sources\.income\.path: required for kind file",
        ),
        (
            lambda c: c["simulatability"]["raw"].update(sources={"income": {"kind": "url", "path": "x.csv"}}),
            r"config\.simulatability\.raw\.sources\.income\.path: only used with kind file",
        ),
        (
            lambda c: c["simulatability"]["hamming"].update(max_imbalance=0),
            r"config\.simulatability\.hamming\.max_imbalance: 0 is less than or equal to the minimum of 0",
        ),
        (
            lambda c: c["simulatability"]["hamming"].update(min_group_size=11),
            r"config\.simulatability\.hamming\.min_group_size: larger than max_group_size \(11 > 10\)",
        ),
        (
            lambda c: c["simulatability"]["hamming"].update(max_centres={"titanic": 5}),
            r"config\.simulatability\.hamming\.max_centres: 'titanic' is not one of",
        ),
        (
            lambda c: c["simulatability"]["eval_set"].update(unit="centres"),
            r"config\.simulatability\.eval_set\.unit: 'centres' is not one of \['rows', 'pairs'\]",
        ),
        (
            lambda c: c["simulatability"]["moral_machines"].update(scenarios="many"),
            r"config\.simulatability\.moral_machines\.scenarios: 'many' is not of type 'integer'",
        ),
        # keys of issues 9 and 10
        (lambda c: c.update(results_dir=3), r"config\.results_dir: 3 is not of type 'string'"),
        (lambda c: c.update(transcripts={"sample": -1}), r"config\.transcripts\.sample: -1 is less than"),
        (lambda c: c.update(transcripts={"colour": "red"}), r"config\.transcripts: Additional properties"),
        (
            lambda c: c.update(cross_study={"predictors": "some"}),
            r"config\.cross_study\.predictors: 'some' is not one of \['all', 'exclude_same_family'\]",
        ),
        (
            lambda c: c.update(cross_study={"bootstrap": {"seed": "zero"}}),
            r"config\.cross_study\.bootstrap\.seed: 'zero' is not of type 'integer'",
        ),
        (
            lambda c: c.update(cross_study={"bootstrap": {"resamples": -1}}),
            r"config\.cross_study\.bootstrap\.resamples: -1 is less than the minimum of 0",
        ),
        (
            lambda c: c["sce"].update(verify=["lookup", "ask"]),
            r"config\.sce\.verify",
        ),
        (
            lambda c: c["sce"].update(distance_convention="paper"),
            r"config\.sce\.distance_convention: 'paper' is not one of \['ours', 'original'\]",
        ),
        (
            lambda c: c["simulatability"].update(compare_references=[["synthetic-truthful"]]),
            r"config\.simulatability\.compare_references\[0\]",
        ),
        (
            lambda c: c["simulatability"].update(compare_references=[["synthetic-truthful", "gpt-13"]]),
            r"config\.simulatability\.compare_references\[0\]\[1\]: 'gpt-13' is not one of",
        ),
        (
            lambda c: c["simulatability"].update(
                conditions=["without_explanation"], compare_references=[["synthetic-truthful", "synthetic-exact"]]
            ),
            r"config\.simulatability\.compare_references\[0\]: McNemar compares WITH-explanation answers, but "
            r"with_explanation is not among the conditions of \['synthetic-truthful', 'synthetic-exact'\]",
        ),
        (
            lambda c: c["simulatability"]["side"].update(extra_conditions={"cot": ["synthetic-reader-a"]}),
            r"config\.simulatability\.side\.extra_conditions\.cot: \['synthetic-reader-a'\] not among the "
            r"reference models",
        ),
        (
            lambda c: c["simulatability"]["side"].update(extra_conditions={"thinking": ["synthetic-truthful"]}),
            r"config\.simulatability\.side\.extra_conditions: 'thinking' is not one of",
        ),
        (
            lambda c: c["simulatability"]["side"].update(extra_conditions={"cot": "synthetic-truthful"}),
            r"config\.simulatability\.side\.extra_conditions\.cot: 'synthetic-truthful' is not of type 'array'",
        ),
        (
            lambda c: c["simulatability"].update(compare_references=[["synthetic-exact", "synthetic-exact"]]),
            r"config\.simulatability\.compare_references\[0\]: .* names the same model twice",
        ),
        (
            lambda c: c["simulatability"]["testability"].update(predictor="synthetic-truthful"),
            r"testability\.predictor.*synthetic-truthful",
        ),
        (
            lambda c: c["simulatability"]["testability"].update(enabled="yes"),
            r"config\.simulatability\.testability\.enabled: 'yes' is not of type 'boolean'",
        ),
        (
            lambda c: c["simulatability"]["side"].update(feature_min_changed=-5),
            r"config\.simulatability\.side\.feature_min_changed: -5 is less than",
        ),
    ],
)
def test_bad_config_values_are_named(workdir, change, expected):
    config = _load()
    change(config)
    with pytest.raises(ConfigError, match=expected):
        _validate(config)


def test_missing_catalog_file_is_named(workdir):
    config = _load()
    config["catalog"] = "config/nope.yaml"
    with pytest.raises(ConfigError, match=r"file not found: config/nope\.yaml"):
        _validate(config)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"backend": "llamacpp", "model_id": "x"}, r"models\.bad\.backend: 'llamacpp' is not one of"),
        ({"backend": "openai"}, r"models\.bad: 'model_id' is a required property"),
        ({"backend": "openai", "model_id": "x", "api_key": "sk-123"}, r"models\.bad: Additional properties.*'api_key'"),
        (
            {"backend": "openai", "model_id": "x", "api_key_env": "sk-123"},
            r"models\.bad\.api_key_env: must be the NAME of an environment variable .* the value is not shown$",
        ),
        (
            {"backend": "synthetic", "model_id": "x", "synthetic": {"sce": {"counterfactual": "wild"}}},
            r"models\.bad\.synthetic\.sce\.counterfactual: 'wild' is not one of \['exact', 'overshoot', 'timid'\]",
        ),
        ({"backend": "vllm", "model_id": "x", "gpus": "two"}, r"models\.bad\.gpus: 'two' is not of type 'integer'"),
        ({"backend": "openai", "model_id": "x", "provider": "azure"}, r"models\.bad\.provider: 'azure' is not one of"),
        ({"backend": "openai", "model_id": "x", "max_retries": -1}, r"models\.bad\.max_retries: -1 is less than"),
        ({"backend": "openai", "model_id": "x", "request_timeout_s": 0}, r"models\.bad\.request_timeout_s: 0 is less"),
        ({"backend": "anthropic", "model_id": "x", "batch": "yes"}, r"models\.bad\.batch: 'yes' is not of type"),
        ({"backend": "vllm", "model_id": "x", "vllm": {"kv_cache": 1}}, r"models\.bad\.vllm: Additional properties"),
        ({"backend": "openai", "model_id": "x", "sampling": {"temperature": -1}}, r"temperature: -1 is less than"),
    ],
)
def test_bad_catalog_entries_are_named(tmp_path, entry, expected):
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": {"bad": entry}}))
    with pytest.raises(ConfigError, match=expected):
        load_catalog(path, SCHEMAS / "catalog.schema.yaml")


def test_model_names_must_be_wildcard_safe(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": {"a/b": {"backend": "synthetic", "model_id": "x"}}}))
    with pytest.raises(ConfigError, match="does not match"):
        load_catalog(path, SCHEMAS / "catalog.schema.yaml")


# -- issue 9: errors caught when the workflow is parsed, one line each -------------------------------------------
def _catalog_file(tmp_path, text):
    path = tmp_path / "models.yaml"
    path.write_text(text)
    return path


def test_duplicate_keys_are_refused_anywhere_naming_file_line_and_key(tmp_path):
    twice = "models:\n  a:\n    backend: synthetic\n    model_id: x\n  a:\n    backend: openai\n    model_id: y\n"
    path = _catalog_file(tmp_path, twice)
    with pytest.raises(ConfigError) as info:
        load_catalog(path, SCHEMAS / "catalog.schema.yaml")
    assert str(info.value) == (
        f"{path} line 5, column 3: duplicate key 'a' (first at line 2); YAML would keep only the last one silently: "
        "give each its own name or delete one"
    )
    nested = "models:\n  a:\n    backend: openai\n    model_id: x\n    sampling:\n      seed: 1\n      seed: 2\n"
    with pytest.raises(ConfigError, match=r"models\.yaml line 7, column 7: duplicate key 'seed' \(first at line 6\)"):
        load_catalog(_catalog_file(tmp_path, nested), SCHEMAS / "catalog.schema.yaml")
    # a YAML merge key may still be overridden: that is what it is for
    merged = _catalog_file(tmp_path, "base: &b {backend: synthetic, model_id: x}\nm:\n  <<: *b\n  model_id: y\n")
    assert load_yaml(merged)["m"] == {"backend": "synthetic", "model_id": "y"}


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    path = _catalog_file(tmp_path, "models:\n  a:\n    backend: synthetic\n   model_id: x\n")
    with pytest.raises(ConfigError) as info:
        load_catalog(path, SCHEMAS / "catalog.schema.yaml")
    assert str(info.value) == (
        f"{path} line 4, column 4: not valid YAML: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block mapping at line 2); check the indentation, and quote a value that holds ': '"
    )
    path.write_text("models:\n\ta: 1\n")
    with pytest.raises(ConfigError, match=r"line 2, column 1: not valid YAML: found character '\\t'"):
        load_catalog(path, SCHEMAS / "catalog.schema.yaml")


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"backend": "openai", "sampling": {"temperature": 2.0}}, None),
        ({"backend": "openai", "sampling": {"temperature": 2.01}}, "sampling.temperature: 2.01 is above the openai"),
        ({"backend": "anthropic", "sampling": {"temperature": 1.0}}, None),
        (
            {"backend": "anthropic", "sampling": {"temperature": 1.2}},
            "sampling.temperature: 1.2 is above the anthropic backend's maximum of 1",
        ),
        ({"backend": "vllm", "sampling": {"temperature": 2.0}, "gpus": 2}, None),
        ({"backend": "vllm", "sampling": {"temperature": 2.5}}, "sampling.temperature: 2.5 is above the vllm"),
        ({"backend": "synthetic", "sampling": {"temperature": 7}}, None),
        ({"backend": "synthetic", "gpus": 1}, None),  # the Slurm test routes a synthetic model to the GPU partition
        (
            {"backend": "anthropic", "gpus": 1},
            "gpus: 1 for an anthropic (API) model, which runs on the provider's machines; remove gpus",
        ),
        ({"backend": "openai", "concurrency": 1024}, None),
        ({"backend": "openai", "concurrency": 1025}, "concurrency: 1025 requests in flight per job is more than"),
    ],
)
def test_settings_a_backend_cannot_take(tmp_path, entry, problem):
    path = _catalog_file(tmp_path, yaml.safe_dump({"models": {"m": {"model_id": "x", **entry}}}))
    if problem is None:
        load_catalog(path, SCHEMAS / "catalog.schema.yaml")
        return
    with pytest.raises(ConfigError) as info:
        load_catalog(path, SCHEMAS / "catalog.schema.yaml")
    assert str(info.value).startswith(f"{path}: models.m.{problem}")
    assert "\n" not in str(info.value)


def test_numbers_in_scientific_notation_are_read_as_numbers(tmp_path):
    text = (
        "models:\n  m:\n    backend: openai\n    model_id: 1e5\n    sampling: {max_tokens: 1e4, temperature: 5e-1}\n"
        "    rate_limits: {tokens_per_minute: 2.5E6}\n    request_timeout_s: 1.2e2\n"
    )
    entry = load_catalog(_catalog_file(tmp_path, text), SCHEMAS / "catalog.schema.yaml")["m"]
    assert entry.sampling.max_tokens == 10000 and type(entry.sampling.max_tokens) is int
    assert entry.sampling.temperature == 0.5
    assert entry.rate_limits["tokens_per_minute"] == 2_500_000
    assert entry.request_timeout_s == 120
    assert entry.model_id == "1e5"  # a string field keeps its text
    # PyYAML's own float form where an integer is wanted: an int, not 10000.0 sent to an API
    path = _catalog_file(tmp_path, "models:\n  m: {backend: openai, model_id: x, sampling: {max_tokens: 1.0e+4}}\n")
    assert type(load_catalog(path, SCHEMAS / "catalog.schema.yaml")["m"].sampling.max_tokens) is int
    path = _catalog_file(tmp_path, "models:\n  m: {backend: openai, model_id: x, sampling: {max_tokens: 2.5e0}}\n")
    with pytest.raises(ConfigError, match=r"models\.m\.sampling\.max_tokens: 2\.5 is not of type 'integer'"):
        load_catalog(path, SCHEMAS / "catalog.schema.yaml")


def test_config_numbers_written_as_strings_by_snakemake(workdir):
    """Snakemake's YAML reader hands 1e3 over as the string '1e3'."""
    config, _ = _validate(
        {"studies": ["sce"], "sce": {"models": ["synthetic-exact"], "bootstrap": {"resamples": "1e3"}}}
    )
    assert config["sce"]["bootstrap"]["resamples"] == 1000 and type(config["sce"]["bootstrap"]["resamples"]) is int
    with pytest.raises(ConfigError, match=r"config\.sce\.seed: 'forty' is not of type 'integer'"):
        _validate({"studies": ["sce"], "sce": {"models": ["synthetic-exact"], "seed": "forty"}})


def test_every_problem_is_its_own_line(workdir):
    config = _load()
    config["sce"].update(distance="cosine", seed="x")
    with pytest.raises(ConfigError) as info:
        _validate(config)
    lines = str(info.value).splitlines()
    assert lines == [
        "config.sce.distance: 'cosine' is not one of ['gower', 'l1', 'l2']",
        "config.sce.seed: 'x' is not of type 'integer'",
    ]


def test_config_files_are_read_for_duplicate_keys(workdir):
    (workdir / "mine.yaml").write_text("sce:\n  models: [synthetic-exact]\nsce:\n  models: [synthetic-timid]\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml line 3, column 1: duplicate key 'sce' \(first at line 1\)"):
        validate_config(
            {"sce": {"models": ["synthetic-timid"]}},
            SCHEMAS / "config.schema.yaml",
            SCHEMAS / "catalog.schema.yaml",
            config_files=[workdir / "mine.yaml"],
        )


def _prompt_copy(workdir, study):
    return workdir / "config" / "prompts" / study


@pytest.mark.parametrize(
    ("file", "text", "expected"),
    [
        ("minimal.txt", "", r"config\.sce\.prompts: .*minimal\.txt: the template is empty"),
        ("first_pass.heart_disease.txt", "${description} ${choice}", r"config\.sce\.first_pass: .*first_pass\.heart_"),
        ("minimal.txt", "To ${target} for $5", r"minimal\.txt line 1, column 18: a '\$' that starts no placeholder"),
        (
            "standard.income.txt",
            "x\n  $targt",
            r"standard\.income\.txt line 2, column 3: unknown placeholder \$\{targt\}",
        ),
    ],
)
def test_sce_templates_are_checked_when_parsed(workdir, file, text, expected):
    (_prompt_copy(workdir, "sce") / file).write_text(text)
    with pytest.raises(ConfigError, match=expected) as info:
        _validate({"studies": ["sce"], "sce": {"models": ["synthetic-exact"]}})
    assert "\n" not in str(info.value)


def test_simulatability_templates_are_checked_for_the_conditions_run(workdir):
    (_prompt_copy(workdir, "simulatability") / "predictor_cot.txt").write_text("${centre_answer} ${thoughts}")
    section = {"references": ["synthetic-truthful"], "predictors": ["synthetic-reader-a"]}
    _validate({"studies": ["simulatability"], "simulatability": section})  # cot is not run: its template unused
    with pytest.raises(ConfigError) as info:
        _validate({"studies": ["simulatability"], "simulatability": {**section, "conditions": ["cot"]}})
    assert re.fullmatch(
        r"config\.simulatability\.conditions: .*predictor_cot\.txt line 1, column 18: unknown placeholder "
        r"\$\{thoughts\}; this template may use \$\{Assessor_article\}, .*\$\{thinking\}",
        str(info.value),
    )
    (_prompt_copy(workdir, "simulatability") / "reference_answer_last.income.txt").write_text("${description} $")
    with pytest.raises(ConfigError, match=r"config\.simulatability\.prompt_dir: .*reference_answer_last\.income\.txt"):
        _validate({"studies": ["simulatability"], "simulatability": section})


def test_yaml_files_checked_from_the_command_line(tmp_path, capsys):
    """`python -m selfexplain.config FILE...`: Snakemake reports a config file's syntax error without its line."""
    from selfexplain.config import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("studies: [sce]\nsce:\n  datasets: [income\n")
    assert main([str(REPO / "config" / "config.yaml"), str(bad)]) == 1
    assert capsys.readouterr().err == (
        f"ConfigError: {bad} line 4, column 1: not valid YAML: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence at line 3)\n"
    )
    assert main([str(REPO / "config" / "config.yaml")]) == 0
    assert main([]) == 2
