"""A job's log ends with the one-line cause of its failure, below the full traceback (issue 9, item 5)."""

from __future__ import annotations

import subprocess
import sys

from selfexplain.errors import ConfigError
from selfexplain.runlog import one_line_cause
from tests.conftest import REPO

SCRIPT = """
import logging, sys
sys.path.insert(0, {src!r})
from selfexplain.runlog import to_log_file
to_log_file({log!r})
logging.getLogger("job").info("working")
{body}
"""


def _job(tmp_path, body: str) -> tuple[int, list[str]]:
    log = tmp_path / "logs" / "job.log"
    script = SCRIPT.format(src=str(REPO / "src"), log=str(log), body=body)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    return result.returncode, log.read_text(encoding="utf-8").splitlines()


def test_failed_job_ends_its_log_with_the_cause_below_the_traceback(tmp_path):
    body = (
        "from selfexplain.errors import InferenceError\n"
        "def run():\n"
        "    raise InferenceError('model gpt: 3 requests failed for good;\\n  first: HTTP 500')\n"
        "run()\n"
    )
    code, lines = _job(tmp_path, body)
    assert code == 1
    assert lines[0].endswith("INFO job: working")
    assert lines[1] == "Traceback (most recent call last):"
    assert any("in run" in line for line in lines)  # the traceback is kept in full
    assert lines[-1] == "job failed: InferenceError: model gpt: 3 requests failed for good; first: HTTP 500"


def test_successful_job_has_no_failure_line(tmp_path):
    code, lines = _job(tmp_path, "print('done')")
    assert code == 0 and not any("job failed" in line for line in lines)


def test_one_line_cause():
    assert one_line_cause(ConfigError("a\n  b")) == "job failed: ConfigError: a b"
    assert one_line_cause(KeyboardInterrupt()) == "job failed: KeyboardInterrupt"
    leaked = ConfigError("server said: invalid key sk-proj-abcdefgh12345678")
    assert one_line_cause(leaked) == "job failed: ConfigError: server said: invalid key [REDACTED]"
