"""``openlpu board`` (run a program on a board, identify a board) and ``openlpu build`` (a
board's bitstream).

Registered by :func:`add_parsers` from :mod:`openlpu.cli`. Errors print one line naming the
problem and exit 1; a design that does not fit the FPGA exits 2 (as ``openlpu synth`` does).
Progress of a bitstream build goes to stderr, so that ``--json`` output is alone on stdout.
"""

from __future__ import annotations

import json
import sys

__all__ = ["add_parsers", "EXIT_DOES_NOT_FIT"]

#: Exit status when the design does not fit the device.
EXIT_DOES_NOT_FIT = 2


def _error(message: str, status: int = 1) -> int:
    print(f"openlpu: error: {message}", file=sys.stderr)
    return status


def _open(args):
    from .transport import SerialTransport

    return SerialTransport(args.port, args.baud, timeout=args.timeout)


def _cmd_board_identify(args) -> int:
    from openlpu.config import get_config

    from .board import Board
    from .errors import BoardError

    try:
        with _open(args) as port:
            expected = get_config(args.config) if args.config else None
            board = Board(port, expected or get_config("ice40"))
            ident = board.identify(check=expected is not None)
    except BoardError as e:
        return _error(str(e))
    info = ident.to_dict()
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{args.port}: OpenLPU {ident.version}, config hash {ident.config_hash}"
          f" ({'preset ' + repr(ident.preset) if ident.preset else 'not a preset'}), link "
          f"protocol {ident.protocol_version}, UART {ident.clocks_per_bit} clock cycles per bit")
    return 0


def _cmd_board_run(args) -> int:
    from openlpu.cli import _load_program, _to_jsonable

    from .board import Board
    from .errors import BoardError

    program, config = _load_program(args.program, args.config)
    try:
        with _open(args) as port:
            result = Board(port, config).run_program(program, readback=args.readback,
                                                     timeout=args.run_timeout)
    except BoardError as e:
        return _error(str(e))
    report = {"backend": "board", "port": args.port, **result.to_dict()}
    if args.json:
        print(json.dumps(_to_jsonable(report)))
    else:
        s = result.seconds
        print(f"board on {args.port}, config {config.name}: {result.cycles} cycles "
              f"(golden model {result.golden_cycles}); load {s['load']:.2f} s, run "
              f"{s['run']:.2f} s, read back {s['readback']:.2f} s "
              f"({result.bytes_sent:,} bytes sent, {result.bytes_received:,} received)")
        import numpy as np

        for name, value in result.outputs.items():
            with np.printoptions(linewidth=100, threshold=2000):
                print(f"output {name} {value.dtype} {list(value.shape)}:\n{value}")
        print("matches the golden model: " + ("yes" if result.matches else
                                              f"NO: {result.mismatch}"))
    return 0 if result.matches else 1


def _cmd_build(args) -> int:
    from openlpu.boards import BOARDS, BuildError, DoesNotFit, build_bitstream
    from openlpu.config import get_config

    spec = BOARDS[args.board]
    config = get_config(args.config or spec.default_config)
    out = args.out or f"build/boards/{args.board}-{config.name}"
    try:
        result = build_bitstream(args.board, config, out, baud=args.baud,
                                 clock_mhz=args.clock_mhz, timeout=args.timeout,
                                 progress=lambda line: print(line, file=sys.stderr, flush=True))
    except DoesNotFit as e:
        if args.json:
            print(json.dumps({"board": args.board, "config": config.name, "fits": False,
                              "over": {k: {"used": u, "available": a}
                                       for k, (u, a) in e.over.items()},
                              "error": str(e)}))
        return _error(str(e), EXIT_DOES_NOT_FIT)
    except BuildError as e:
        return _error(str(e))
    if args.json:
        print(json.dumps({**result.to_dict(), "fits": True}))
        return 0
    fmax = f"{result.fmax_mhz:.1f} MHz" if result.fmax_mhz else "unknown"
    print(f"{result.bitstream}: config {config.name} on {args.board} at "
          f"{result.clock_mhz:g} MHz (Fmax {fmax}), UART {result.baud} baud, "
          f"{result.seconds['total']:.0f} s")
    for name, (used, available) in sorted(result.utilisation.items()):
        if used:
            print(f"  {name:<16} {used:>7,} / {available:<7,} {100 * used / available:5.1f} %")
    if not result.timing_met:
        print(f"openlpu: warning: timing not met: Fmax {fmax} is below the {result.clock_mhz:g} "
              f"MHz clock; rebuild with a lower --clock-mhz", file=sys.stderr)
    return 0


def add_parsers(sub) -> None:
    """Add ``board`` and ``build`` to the ``openlpu`` subcommands."""
    from openlpu.boards import BOARDS, DEFAULT_BAUD
    from openlpu.config import PRESETS

    presets = ", ".join(PRESETS)

    def link_options(p):
        p.add_argument("--port", required=True, help="serial port of the board, e.g. "
                                                     "/dev/ttyUSB0")
        p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                       help=f"baud rate the bitstream was built for (default {DEFAULT_BAUD})")
        p.add_argument("--timeout", type=float, default=1.0,
                       help="seconds to wait for a reply to start (default 1)")
        p.add_argument("--json", action="store_true")

    board = sub.add_parser("board", help="talk to an OpenLPU board over its UART link")
    bsub = board.add_subparsers(dest="board_command", required=True)
    run = bsub.add_parser("run", help="run a program (.s or .bin) on the board and compare "
                                      "it with the golden model")
    run.add_argument("program")
    run.add_argument("--config", help="preset or .json (default: the program's own config)")
    run.add_argument("--readback", choices=["auto", "written"], default="auto",
                     help="SRAM to read back: 'auto' (all of it for small configs) or only "
                          "the words the program wrote and its outputs")
    run.add_argument("--run-timeout", type=float, default=10.0,
                     help="seconds the run may take (default 10)")
    link_options(run)
    run.set_defaults(func=_cmd_board_run)
    ident = bsub.add_parser("identify", help="ask the board which config it runs")
    ident.add_argument("--config", help=f"check that the board runs this config ({presets})")
    link_options(ident)
    ident.set_defaults(func=_cmd_board_identify)

    build = sub.add_parser("build", help="build a board's bitstream (the chip behind a UART "
                                         "link) with yosys and nextpnr")
    build.add_argument("--board", required=True, choices=list(BOARDS),
                       help="; ".join(f"{k}: {v.description}" for k, v in BOARDS.items()))
    build.add_argument("--config", help=f"preset ({presets}) or .json (default: ecp5 for "
                                        f"ulx3s-85f, ice40 for icebreaker)")
    build.add_argument("--out", help="build directory (default build/boards/BOARD-CONFIG)")
    build.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                       help=f"UART baud rate (default {DEFAULT_BAUD})")
    build.add_argument("--clock-mhz", type=float,
                       help="chip clock from a PLL (ECP5 boards; default 12.5 on the ULX3S; "
                            "the iCEBreaker runs at its 12 MHz oscillator)")
    build.add_argument("--timeout", type=float, default=1800.0,
                       help="stop the tools after this many seconds (default 1800)")
    build.add_argument("--json", action="store_true")
    build.set_defaults(func=_cmd_build)

