"""The ``openlpu`` command line: chip info, assembler, disassembler, program runner, layer
compiler and runner (``openlpu layer``), synthesis and board tools.

Every subcommand takes ``--json`` where a script would want to read its output. User errors
(bad config, bad assembly, bad program file, schedule violations) print one line naming the
problem and exit with status 1; they never show a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .config import PRESETS, ConfigError, get_config
from .isa import IsaError

__all__ = ["main"]


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def _load_program(path: str, config_name: str | None):
    """A Program from an assembly (.s) or binary (.bin) file, and the config it runs on."""
    from firmware.asm import assemble_file
    from firmware.program import load

    p = Path(path)
    if not p.exists():
        raise CliError(f"{path}: no such file")
    if p.suffix == ".s":
        if config_name is None:
            raise CliError(f"{path}: --config is required to assemble a .s file "
                           f"(presets: {', '.join(PRESETS)})")
        config = get_config(config_name)
        return assemble_file(p, config), config
    program = load(p)
    config = get_config(config_name or program.config_name)
    return program, config


def _to_jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    return value


def _isa_table(config) -> list[dict]:
    from .isa import OPS

    rows = []
    for spec in OPS.values():
        rows.append({
            "mnemonic": spec.name, "opcode": int(spec.opcode.value), "unit": spec.unit.name,
            "operands": [f for f, _ in spec.operands],
            "suffix": spec.suffix,
            "latency": None if spec.latency is None else spec.latency(config),
            "reserved": spec.reserved, "summary": spec.summary})
    return rows


def _cmd_info(args) -> int:
    config = get_config(args.config)
    if args.isa:
        rows = _isa_table(config)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        print(f"instruction set, latencies for config {config.name}:")
        for r in rows:
            lat = "-" if r["latency"] is None else r["latency"]
            ops = ", ".join(r["operands"])
            print(f"  {r['opcode']:#04x} {r['unit']:<4} {r['mnemonic']:<10} {ops:<18} "
                  f"lat {lat!s:>3}  {r['summary']}")
        return 0
    summary = config.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        if isinstance(value, float):
            value = f"{value:,.6g}"
        elif isinstance(value, int):
            value = f"{value:,}"
        print(f"{key:<{width}}  {value}")
    print("\nfloorplan (west -> east): " + " | ".join(s.name for s in config.slices))
    return 0


def _cmd_asm(args) -> int:
    from firmware.asm import assemble_file
    from firmware.program import save

    config = get_config(args.config)
    program = assemble_file(Path(args.file), config)
    out = args.output or str(Path(args.file).with_suffix(".bin"))
    save(program, out)
    words = sum(len(code) for code in program.queues.values())
    print(f"{out}: {words} instruction words in {len(program.queues)} queues, "
          f"{len(program.mem_init)} SRAM segments, {len(program.outputs)} outputs "
          f"(config {config.name}, hash {config.config_hash})")
    return 0


def _cmd_disasm(args) -> int:
    from firmware.disasm import disassemble
    from firmware.program import load

    text = disassemble(load(Path(args.file)))
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_verilog(args) -> int:
    from hdl.verilog import generate

    config = get_config(args.config)
    text = generate(config, args.top)
    Path(args.output).write_text(text)
    print(f"{args.output}: module openlpu_{args.top} for config {config.name} "
          f"({len(text.splitlines()):,} lines)")
    return 0


def _run_rtl(args, program, config, golden) -> dict:
    from tb.runner import RtlRunError
    from tb.verify import outputs_from_words, verify

    if args.collect:
        raise CliError("--collect applies to the golden backend only")
    extra = {"trace_to": args.trace} if args.trace else {}
    if args.trace_window is not None:
        extra["trace_window"] = args.trace_window
    try:
        (v,) = verify(config, {"program": program}, args.backend, **extra)
    except RtlRunError as e:
        raise CliError(str(e)) from None
    return {"cycles": v.rtl.cycles, "outputs": outputs_from_words(config, program, v.rtl),
            "matches_golden": v.matches, "mismatch": None if v.matches else str(v.comparison),
            "golden_cycles": golden.cycles, "rtl_run_seconds": v.rtl.run_seconds,
            "rtl_build_seconds": v.rtl.build_seconds}


def _cmd_run(args) -> int:
    from sim_models.golden import run_program

    if args.trace_window is not None and not args.trace:
        raise CliError("--trace-window needs --trace FILE.fst")
    if args.trace and args.backend in ("golden", "amaranth"):
        raise CliError("--trace needs the verilator or icarus backend")

    program, config = _load_program(args.program, args.config)
    result = run_program(config, program, max_cycles=args.max_cycles,
                         on_error="collect" if args.collect else "raise")
    report = {
        "backend": args.backend,
        "config": config.name,
        "cycles": result.cycles,
        "seconds_at_clock": result.cycles / (config.clock_mhz * 1e6),
        "outputs": result.outputs,
        "counters": result.counters,
        "violations": [str(v) for v in result.violations],
        "matches_golden": True,
    }
    if args.backend != "golden":
        report.update(_run_rtl(args, program, config, result))
    if args.json:
        print(json.dumps(_to_jsonable(report)))
    else:
        print(f"backend {args.backend}, config {config.name}: {report['cycles']} cycles "
              f"({report['seconds_at_clock'] * 1e6:.3f} us at {config.clock_mhz:g} MHz)")
        c = result.counters
        print(f"MACs {c['macs']:,}, MXM utilisation {c['mxm_utilization']:.1%}, "
              f"ops per unit {c['ops_per_unit']}")
        for name, value in report["outputs"].items():
            with np.printoptions(linewidth=100, threshold=2000):
                print(f"output {name} {value.dtype} {list(value.shape)}:\n{value}")
        for v in result.violations:
            print(f"violation: {v}")
        if args.backend != "golden":
            print("matches the golden model: " + ("yes" if report["matches_golden"] else
                                                  f"NO: {report['mismatch']}"))
    return 1 if result.violations or not report["matches_golden"] else 0


def _cycle_window(text: str) -> tuple[int, int]:
    """``A:B`` -> ``(A, B)`` with ``0 <= A < B`` (argparse turns the error into a message)."""
    try:
        first, stop = (int(x, 0) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not A:B (two cycle numbers, e.g. 100:200)") from None
    if not 0 <= first < stop:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= A < B")
    return first, stop


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``openlpu`` command."""
    presets = ", ".join(PRESETS)
    p = argparse.ArgumentParser(prog="openlpu", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="parameters and derived figures of a chip config")
    info.add_argument("--config", default="groqchip", help=f"preset ({presets}) or .json file")
    info.add_argument("--isa", action="store_true",
                      help="print the instruction set with this config's latencies")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=_cmd_info)

    asm = sub.add_parser("asm", help="assemble a .s file into a binary program")
    asm.add_argument("file")
    asm.add_argument("-o", "--output", help="output .bin (default: FILE with .bin)")
    asm.add_argument("--config", required=True, help=f"preset ({presets}) or .json file")
    asm.set_defaults(func=_cmd_asm)

    dis = sub.add_parser("disasm", help="disassemble a binary program to assembly text")
    dis.add_argument("file")
    dis.add_argument("-o", "--output")
    dis.set_defaults(func=_cmd_disasm)

    run = sub.add_parser("run", help="run a program (.s or .bin) and print its outputs")
    run.add_argument("program")
    run.add_argument("--config", help="preset or .json (default: the program's own config)")
    run.add_argument("--backend", default="golden",
                     choices=["golden", "amaranth", "verilator", "icarus"],
                     help="golden model, or the RTL (compared with the golden model)")
    run.add_argument("--trace", metavar="FILE.fst",
                     help="verilator/icarus: write an FST waveform of the simulation")
    run.add_argument("--trace-window", metavar="A:B", type=_cycle_window,
                     help="keep only chip cycles A <= cycle < B (from START) in the waveform")
    run.add_argument("--max-cycles", type=int, default=50_000_000)
    run.add_argument("--collect", action="store_true",
                     help="report every schedule violation instead of stopping at the first")
    run.add_argument("--json", action="store_true")
    run.set_defaults(func=_cmd_run)

    vlog = sub.add_parser("verilog", help="write standalone Verilog of the chip or one unit")
    vlog.add_argument("--config", required=True, help=f"preset ({presets}) or .json file")
    vlog.add_argument("-o", "--output", required=True)
    vlog.add_argument("--top", default="chip", choices=["chip", "icu", "mem", "vxm", "mxm",
                                                         "sxm"],
                      help="the chip top (default) or one unit")
    vlog.set_defaults(func=_cmd_verilog)

    from .layer_cli import add_parser as add_layer_parser
    add_layer_parser(sub)
    from .fpga.cli import add_parser as add_synth_parser
    add_synth_parser(sub)
    from firmware.runtime.cli import add_parsers as add_board_parsers
    add_board_parsers(sub)  # board run/identify, build --board
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``openlpu`` console script."""
    from firmware.asm import AsmError
    from firmware.layer_run import LayerRunError
    from firmware.lower.errors import LoweringError
    from firmware.model_import import ModelImportError
    from firmware.program import ProgramError
    from sim_models.errors import ScheduleError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CliError, ConfigError, IsaError, AsmError, ProgramError, ScheduleError,
            LayerRunError, LoweringError, ModelImportError, OSError) as e:
        print(f"openlpu: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
