"""Verilog generation for the chip top or one unit, with a content-addressed cache.

``openlpu verilog --config NAME -o FILE.v [--top UNIT]`` calls :func:`generate`. Generated files
are cached under ``build/rtl/verilog`` keyed by the config hash, the unit and a hash of the RTL
sources, so the testbenches regenerate only when the design changes.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from amaranth.back import verilog

from openlpu.config import ChipConfig

__all__ = ["UNITS", "build_unit", "generate", "cached_verilog", "source_hash",
           "compact_memory_init", "comb_at_time_zero"]

#: ``--top`` choices: the chip and every unit a user may drop into a design of their own.
UNITS = ("chip", "icu", "mem", "vxm", "mxm", "sxm")


def build_unit(config: ChipConfig, top: str = "chip"):
    """The Amaranth component ``top`` for ``config``."""
    if top == "chip":
        from .chip import Chip
        return Chip(config)
    if top == "icu":
        from .icu import Icu
        return Icu(config)
    if top == "mem":
        from .mem_tile import MemTile
        return MemTile(config)
    if top == "vxm":
        from .vxm_alu import VxmAluTile
        return VxmAluTile(config)
    if top == "mxm":
        from .mxm_plane import MxmPlane
        return MxmPlane(config)
    if top == "sxm":
        from .sxm import Sxm
        return Sxm(config)
    raise ValueError(f"unknown unit {top!r}; choose one of: {', '.join(UNITS)}")


def module_name(config: ChipConfig, top: str = "chip") -> str:
    """Verilog module name of ``top`` for ``config``: ``openlpu_<top>``."""
    return f"openlpu_{top}"


_INIT_BLOCK = re.compile(
    r"^(?P<indent> *)initial begin\n(?P<body>(?: *[\w$\\.]+\[\d+\] = [^;\n]+;\n)+) *end\n",
    re.MULTILINE)
_INIT_LINE = re.compile(r"^ *(?P<mem>[\w$\\.]+)\[(?P<i>\d+)\] = (?P<v>[^;\n]+);$")


def compact_memory_init(text: str) -> str:
    """Rewrite every ``initial`` block that sets all words ``0..N-1`` of one memory to the same
    value (Amaranth writes one assignment per word) as a ``for`` loop.

    The behaviour is identical; the file is smaller by the size of the memories, which matters
    for the SRAM of a whole chip (a MEM tile of the sim preset would otherwise need 3 MB of
    Verilog). Blocks with real contents (ROMs) are left as they are.
    """
    count = 0

    def repl(match):
        nonlocal count
        lines = match.group("body").splitlines()
        parsed = [_INIT_LINE.match(line) for line in lines]
        if not all(parsed):
            return match.group(0)
        mems = {p.group("mem") for p in parsed}
        values = {p.group("v") for p in parsed}
        indices = [int(p.group("i")) for p in parsed]
        if len(mems) != 1 or len(values) != 1 or indices != list(range(len(indices))):
            return match.group(0)
        count += 1
        ind = match.group("indent")
        mem, value, n = mems.pop(), values.pop(), len(indices)
        var = f"_openlpu_init_{count}"
        return (f"{ind}integer {var};\n{ind}initial begin\n"
                f"{ind}  for ({var} = 0; {var} < {n}; {var} = {var} + 1) {mem}[{var}] = {value};\n"
                f"{ind}end\n")

    return _INIT_BLOCK.sub(repl, text)


_TRIGGER = re.compile(
    r"^(?P<indent> *)reg (?P<name>\\\$auto\$verilog_backend\S*dump_module\S*)\s+= 0;$",
    re.MULTILINE)


def comb_at_time_zero(text: str) -> str:
    """Make every ``always @*`` block evaluate once right after time 0.

    An ``always @*`` block runs only when one of its inputs changes, so a combinational output
    whose inputs stay constant (a unit that is never used) would keep its initial X in an
    event-driven simulator. Yosys makes every such block read a per-module register declared
    ``= 0`` for this purpose, but Icarus 11 gives that initialiser no event. This adds
    ``initial #1 reg = 1``: by then every block waits on its inputs, so each one runs.
    (Plain Verilog-2005. Verilator evaluates every block at start and would need ``--timing``
    for the delay, so the line is left out for it with ``ifndef VERILATOR``.)
    """
    return _TRIGGER.sub(lambda m: f"{m.group(0)}\n`ifndef VERILATOR\n{m.group('indent')}"
                                  f"initial #1 {m.group('name')} = 1'h1;\n`endif", text)


def generate(config: ChipConfig, top: str = "chip") -> str:
    """Standalone (System)Verilog of ``top`` (the chip, or one unit) for ``config``."""
    unit = build_unit(config, top)
    text = verilog.convert(unit, name=module_name(config, top), emit_src=False)
    return comb_at_time_zero(compact_memory_init(text))


def rtl_sources() -> list[Path]:
    """This module and every module of the project it imports, transitively: the units of
    hdl/ and the shared definitions of openlpu/ (read from the import statements, so a new
    file that the chip does not use, e.g. a board top, does not invalidate the caches)."""
    import ast

    repo = Path(__file__).resolve().parents[1]
    packages = {"hdl", "openlpu"}
    todo, seen = [Path(__file__).resolve()], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        package = path.parent.name
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level == 1:  # from .x import y / from . import y
                    module = f"{package}.{module}" if module else package
                names = [module] + [f"{module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] not in packages:
                    continue
                if len(parts) == 1:
                    todo.append(repo / parts[0] / "__init__.py")
                    continue
                candidate = repo / parts[0] / f"{parts[1]}.py"
                if candidate.exists():
                    todo.append(candidate)
                todo.append(repo / parts[0] / "__init__.py")
    return sorted(seen)


def source_hash() -> str:
    """Hash of the RTL's source files (:func:`rtl_sources`)."""
    h = hashlib.sha256()
    for f in rtl_sources():
        h.update(f"{f.parent.name}/{f.name}".encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def cached_verilog(config: ChipConfig, top: str = "chip",
                   cache_dir: Path | str = "build/rtl/verilog") -> Path:
    """Path of the Verilog of ``top`` for ``config``, generating it if the cache lacks it.

    A lock file makes parallel test workers wait for one generation instead of each
    generating the same (large) file.
    """
    import fcntl

    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{top}_{config.config_hash}_{source_hash()}.v"
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_text(generate(config, top))
            tmp.replace(path)
    return path
