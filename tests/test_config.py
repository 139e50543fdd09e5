"""Bad configs and catalogs fail at parse time with a message that names the key and lists what is allowed."""

from __future__ import annotations

import copy
import shutil

import pytest
import yaml

from selfexplain.config import load_catalog, validate_config
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
            r"models\.bad\.api_key_env: .* does not match",
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
