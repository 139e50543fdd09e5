"""What a user sees on the console when a config is wrong, a key is missing or a job fails (issue 9, items 3, 5, 6
and "do not retry a ConfigError"): one line naming the key, no traceback frames, no key echoed, no job started
that is certain to fail, and a failed job's cause printed where the user looks. Each test runs the real workflow
in a temporary directory (about 25 s in all on 2 cores)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from selfexplain.serve import ServerThread, models_from_specs
from tests.test_workflow import _command, _workdir

pytestmark = pytest.mark.workflow
CONFIG = {
    "studies": ["sce"],
    "sce": {
        "models": ["synthetic-exact"],
        "datasets": ["income"],
        "prompts": ["minimal"],
        "bootstrap": {"resamples": 0},
    },
}
SYNTHETIC = "  synthetic-exact:\n    backend: synthetic\n    model_id: selfexplain/exact\n"
# Distinctive fake keys: found anywhere they should not be, they can only have come from this test.
KEY = "sk-proj-SELFEXPLAINgoodKEY0123456789abcdefXYZ"
WRONG_KEY = "sk-proj-SELFEXPLAINwrongKEY9876543210fedcbaQRS"
PASTED_KEY = "sk-ant-api03-SELFEXPLAINpastedKEY0123456789abc"


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The environment of the runs. Snakemake's Slurm plugin asks `scontrol show config` for its help text at every
    start; where a Slurm client is installed but no controller runs, that waits 10 s. These runs are local, so a
    `scontrol` that fails at once goes first on PATH (it changes nothing else)."""
    shim = tmp_path_factory.mktemp("bin")
    (shim / "scontrol").write_text("#!/bin/sh\nexit 1\n")
    (shim / "scontrol").chmod(0o755)
    return {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"}


def _run(workdir: Path, env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess:
    result = subprocess.run(_command(workdir, *args), capture_output=True, text=True, timeout=300, env={**env, **extra})
    result.console = result.stdout + result.stderr
    return result


def _set_config(workdir: Path, **sce: object) -> None:
    config = yaml.safe_load((workdir / "config" / "tiny.yaml").read_text())
    config["catalog"] = "config/test_models.yaml"
    config["sce"].update(sce)
    (workdir / "config" / "tiny.yaml").write_text(yaml.safe_dump(config))


def _catalog(workdir: Path, text: str, **sce: object) -> None:
    (workdir / "config" / "test_models.yaml").write_text(text)
    _set_config(workdir, **sce)


def _with_model(workdir: Path, entry: str) -> None:
    """A catalog of synthetic-exact and `extra` (an entry's YAML lines), with both in the run."""
    _catalog(workdir, "models:\n" + SYNTHETIC + "  extra:\n" + entry, models=["synthetic-exact", "extra"])


PROMPTS = "config/prompts/sce"
# A few of the parse-time checks through a real `snakemake -n`; tests/test_config.py and tests/test_prompts.py
# cover every check through the functions.
CASES = {
    "unknown placeholder in a dataset's template": (
        lambda w: (w / PROMPTS / "minimal.income.txt").write_text("Flip it.\nMake it ${targt} please."),
        rf"ConfigError: config\.sce\.prompts: {PROMPTS}/minimal\.income\.txt line 2, column 9: unknown placeholder "
        r"\$\{targt\}; this template may use \$\{feature_keys\}, .*\$\{target\}$",
    ),
    "stray dollar": (
        lambda w: (w / PROMPTS / "minimal.txt").write_text("Costs $5 to reach ${target}."),
        rf"ConfigError: config\.sce\.prompts: {PROMPTS}/minimal\.txt line 1, column 7: a '\$' that starts no "
        r"placeholder; write \$\$ for a literal dollar sign, \$\{name\} for a placeholder$",
    ),
    "duplicate model name": (
        lambda w: _catalog(
            w,
            "models:\n" + SYNTHETIC + "  twin:\n    backend: synthetic\n    model_id: a\n"
            "  twin:\n    backend: synthetic\n    model_id: b\n",
        ),
        r"ConfigError: config/test_models\.yaml line 8, column 3: duplicate key 'twin' \(first at line 5\); YAML "
        r"would keep only the last one silently: give each its own name or delete one$",
    ),
    "YAML syntax error in the catalog": (
        lambda w: _catalog(w, "models:\n" + SYNTHETIC + "  broken: [backend: synthetic\n"),
        r"ConfigError: config/test_models\.yaml line 6, column 1: not valid YAML: expected ',' or ']', but got "
        r"'<stream end>' \(while parsing a flow sequence at line 5\)$",
    ),
    "duplicate key in the config file": (
        lambda w: (w / "config" / "tiny.yaml").write_text(
            "studies: [sce]\nsce:\n  models: [synthetic-exact]\n  datasets: [income]\n  prompts: [minimal]\n"
            "  prompts: [standard]\n"
        ),
        r"ConfigError: \S*config/tiny\.yaml line 6, column 3: duplicate key 'prompts' \(first at line 5\)",
    ),
    "temperature above OpenAI's maximum": (
        lambda w: _with_model(w, "    backend: openai\n    model_id: gpt-x\n    sampling: {temperature: 2.5}\n"),
        r"ConfigError: config/test_models\.yaml: models\.extra\.sampling\.temperature: 2\.5 is above the openai "
        r"backend's maximum of 2$",
    ),
    "gpus on an API model": (
        lambda w: _with_model(w, "    backend: anthropic\n    model_id: claude-x\n    gpus: 2\n"),
        r"ConfigError: config/test_models\.yaml: models\.extra\.gpus: 2 for an anthropic \(API\) model, which "
        r"runs on the provider's machines; remove gpus \(only the vllm backend uses GPUs\)$",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_config_errors_fail_the_dry_run_with_one_line(tmp_path, env, case):
    change, expected = CASES[case]
    workdir = _workdir(tmp_path, CONFIG)
    change(workdir)
    result = _run(workdir, env, "-n")
    assert result.returncode != 0, result.console
    assert re.search(expected, result.console, flags=re.MULTILINE), result.console
    errors = [line for line in result.console.splitlines() if "Error" in line]
    assert len(errors) == 1, errors  # one problem, one line
    assert "Traceback" not in result.console and 'File "' not in result.console, result.console


def test_numbers_in_scientific_notation_are_numbers(tmp_path, env):
    """Snakemake's YAML reader hands 1e1 over as the string '1e1'; where the schema wants a number it is one."""
    workdir = _workdir(tmp_path, CONFIG)
    (workdir / "config" / "tiny.yaml").write_text(
        "studies: [sce]\nsce:\n  models: [synthetic-exact]\n  datasets: [income]\n  prompts: [minimal]\n"
        "  bootstrap: {resamples: 1e1}\n"
    )
    assert _run(workdir, env, "-n").returncode == 0
    (workdir / "config" / "tiny.yaml").write_text(
        "studies: [sce]\nsce:\n  models: [synthetic-exact]\n  bootstrap: {resamples: 1.5e1x}\n"
    )
    result = _run(workdir, env, "-n")
    assert "ConfigError: config.sce.bootstrap.resamples: '1.5e1x' is not of type 'integer'" in result.console


def test_no_key_is_ever_echoed_or_written(tmp_path, env):
    """A key pasted where the variable's name belongs, a wrong key and a good one, against a local server that
    requires the good key: none of them appears on the console or in any file the runs write."""
    workdir = _workdir(tmp_path, CONFIG)
    with ServerThread(models_from_specs(["exact=exact"]), api_key=KEY) as server:
        entry = f"    backend: openai\n    model_id: exact\n    base_url: {server.base_url}\n    concurrency: 32\n"
        # 1. the key itself as api_key_env: refused when parsed, not echoed
        _catalog(workdir, f"models:\n  served:\n{entry}    api_key_env: {PASTED_KEY}\n", models=["served"])
        pasted = _run(workdir, env, SELFEXPLAIN_TEST_KEY=KEY)
        assert pasted.returncode != 0
        assert pasted.console.splitlines()[-1] == (
            "ConfigError: config/test_models.yaml: models.served.api_key_env: must be the NAME of an environment "
            "variable (capitals, digits and underscores, e.g. OPENAI_API_KEY); the value is not shown: it looks like "
            "a key itself, so delete it from the file (and revoke it if the file was shared)"
        ), pasted.console
        # 2. a wrong key: the preflight's one cheap request is refused, no job starts
        _catalog(workdir, f"models:\n  served:\n{entry}    api_key_env: SELFEXPLAIN_TEST_KEY\n", models=["served"])
        wrong = _run(workdir, env, SELFEXPLAIN_TEST_KEY=WRONG_KEY)
        assert wrong.returncode != 0
        assert wrong.console.splitlines()[-1] == (
            f"ConfigError: model 'served': {server.base_url}/models rejected the API key in $SELFEXPLAIN_TEST_KEY "
            "(HTTP 401: invalid or missing API key); fix the key or api_key_env and rerun"
        ), wrong.console
        assert not (workdir / "logs").exists()
        # 3. the good key: the whole study runs
        good = _run(workdir, env, SELFEXPLAIN_TEST_KEY=KEY)
        assert good.returncode == 0, good.console
    assert (workdir / "results/sce/served/income/minimal/metrics.json").exists()
    assert list((workdir / "journal").rglob("*")) and list((workdir / ".snakemake").rglob("*.log"))
    fragments = [k[8:32].encode() for k in (KEY, WRONG_KEY, PASTED_KEY)]
    for result in (pasted, wrong, good):
        assert not any(f.decode() in result.console for f in fragments), result.console
    written = [p for p in workdir.rglob("*") if p.is_file() and not p.is_relative_to(workdir / "config")]
    assert len(written) > 20
    for path in written:
        data = path.read_bytes()
        assert not any(f in data for f in fragments), path


def _uncallable_models(workdir: Path, *models: str) -> None:
    """Two models certain to fail: an API key variable that is not set, and vLLM, which this venv lacks."""
    _catalog(
        workdir,
        "models:\n" + SYNTHETIC + "  keyless:\n    backend: openai\n    model_id: gpt-x\n"
        "    api_key_env: SELFEXPLAIN_TEST_UNSET_KEY\n"
        "  novllm:\n    backend: vllm\n    model_id: org/tiny\n    gpus: 1\n",
        models=list(models),
    )


def test_jobs_certain_to_fail_are_never_started_so_never_retried(tmp_path, env):
    if importlib.util.find_spec("vllm"):
        pytest.skip("vLLM is installed here")
    workdir = _workdir(tmp_path, CONFIG)
    _uncallable_models(workdir, "synthetic-exact", "keyless", "novllm")
    # planning needs no key: the dry run lists every job
    dry = _run(workdir, env, "-n", SELFEXPLAIN_TEST_UNSET_KEY="")
    assert dry.returncode == 0, dry.console
    assert re.search(r"^sce_predict\s+3$", dry.console, flags=re.MULTILINE)
    result = _run(workdir, env, SELFEXPLAIN_TEST_UNSET_KEY="")
    assert result.returncode != 0
    keyless, novllm = result.console.splitlines()[-2:]
    assert keyless == (
        "ConfigError: model 'keyless': environment variable SELFEXPLAIN_TEST_UNSET_KEY is not set or empty; export "
        "it before running (the catalog stores only the variable's name)"
    ), result.console
    assert novllm.startswith("ConfigError: model 'novllm' uses the vllm backend, but vLLM is not installed: ")
    assert "Traceback" not in result.console and "Trying to restart job" not in result.console
    assert "rule sce_" not in result.console, result.console  # no job started, not even the synthetic model's
    assert not (workdir / "logs").exists() and not (workdir / "results").exists()
    assert not list((workdir / ".snakemake" / "locks").glob("*")), "the lock must be released"


def test_without_hooks_a_failed_jobs_cause_reaches_the_console(tmp_path, env):
    """--no-hooks skips the preflight: the job fails on its own check in its first second (no request sent), is
    retried once (the profiles' `retries`), and the last line of its log, printed on the console, says why."""
    workdir = _workdir(tmp_path, CONFIG)
    _uncallable_models(workdir, "keyless")
    result = _run(workdir, env, "--no-hooks", SELFEXPLAIN_TEST_UNSET_KEY="")
    assert result.returncode != 0
    cause = (
        "job failed: ConfigError: model 'keyless': environment variable SELFEXPLAIN_TEST_UNSET_KEY is not set or "
        "empty; export it before running (the catalog stores only the variable's name)"
    )
    log = (workdir / "logs/sce_predict/keyless/income.log").read_text().splitlines()
    assert log[0] == "Traceback (most recent call last):" and log[-1] == cause
    assert log[-2].startswith("selfexplain.errors.ConfigError: model 'keyless'")
    assert f"Logfile logs/sce_predict/keyless/income.log:\n{'=' * 80}\n" in result.console
    assert f"{cause}\n{'=' * 80}" in result.console, result.console
