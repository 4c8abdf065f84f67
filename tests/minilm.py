"""The real all-MiniLM-L6-v2 checkpoint for the tests that need it (found by
:func:`firmware.minilm.minilm_dir`), or skip them."""

from __future__ import annotations

import os

import pytest

from firmware.minilm import ENV_VAR, INSTALL_HINT, PACKAGE, minilm_dir

__all__ = ["minilm_dir", "require_minilm"]


def require_minilm():
    """The checkpoint directory; skips the calling test with the reason when it is absent."""
    d = minilm_dir()
    if d is None:
        env = os.environ.get(ENV_VAR)
        where = (f"${ENV_VAR}={env} has no config.json + model.safetensors" if env else
                 f"neither ${ENV_VAR} is set nor the {PACKAGE} package installed "
                 f"({INSTALL_HINT})")
        pytest.skip(f"all-MiniLM-L6-v2 checkpoint not found: {where}")
    return d
