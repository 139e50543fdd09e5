"""The package's studies, in one place.

Shared machinery asks here what each study contributes, so it never names a study itself: `config` validates each
study's section with `selfexplain.<study>.config`, and the synthetic backend (`selfexplain.llm.synthetic`) loads the
respondents the studies register.
"""

from __future__ import annotations

import importlib

STUDIES = ("sce", "simulatability")
# Modules that register a synthetic respondent when imported (kept as names: importing them pulls in numpy).
RESPONDENT_MODULES = ("selfexplain.sce.synthetic", "selfexplain.simulatability.synthetic")


def load_respondents() -> None:
    for module in RESPONDENT_MODULES:
        importlib.import_module(module)
