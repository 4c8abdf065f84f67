"""The synthesis wrapper: the chip (or one unit) behind five pins, for resource and Fmax reports.

The chip top has a 99-bit host bus and a unit such as the VXM has hundreds of stream bits,
more than the 39 user IOs of an iCE40 UP5K. Tying unused ports to constants or leaving outputs
open would let yosys delete the logic behind them, so the wrapper keeps every port alive
with five pins (``clk``, ``rst``, ``sin``, ``shift``, ``sout``):

* every input port bit (except ``clk`` and ``rst``, which are pins) is one stage of an input
  shift chain that shifts in from ``sin`` while ``shift`` is high;
* every output port bit feeds a registered XOR tree (4 inputs per node, one register per
  node) whose root drives ``sout``.

Every input is driven by a distinct flip-flop and every output bit changes ``sout``, so yosys
can remove nothing but logic the design itself never uses (an XOR of independent bits has no
constant input to propagate). The one exception: two output bits that are the same net and meet
in one XOR node cancel; each node takes bits ``n / 4`` apart rather than neighbours, so the
likeliest pairs (neighbouring bits of one port) never meet.

Every path that starts or ends at a port starts or ends at a wrapper flip-flop, as it will
behind the UART board top that replaces this wrapper, so the reported Fmax is that of the
design's own register-to-register paths.

The cost, included in the reported counts: one flip-flop per input bit (no LUT: the shift
enable is the flip-flop's own enable) and about a third of a LUT4 and flip-flop per output bit
(:attr:`Ports.wrapper_ffs`, :attr:`Ports.wrapper_luts`).

The wrapper is plain Verilog written around the cached output of :mod:`hdl.verilog`; the ports
are read from that Verilog, so the wrapper always matches what is synthesised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .reports import unit_of_module

__all__ = ["PINS", "TOP", "XOR_ARITY", "Port", "Ports", "parse_ports", "submodules",
           "wrapper_verilog", "xor_tree_levels"]

#: Module name of the synthesis wrapper.
TOP = "openlpu_synth_top"

#: The wrapper's pins.
PINS = ("clk", "rst", "sin", "shift", "sout")

#: Inputs per XOR-tree node: one LUT4 each.
XOR_ARITY = 4

#: Ports of the wrapped module that are connected straight to wrapper pins.
_DIRECT = ("clk", "rst")

_PORT = re.compile(
    r"^\s*(?P<dir>input|output|inout)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?"
    r"(?:\[(?P<msb>\d+):(?P<lsb>\d+)\]\s*)?(?P<name>\\\S+|[A-Za-z_][\w$]*)\s*;",
    re.MULTILINE)


@dataclass(frozen=True)
class Port:
    """One port of the wrapped module: ``direction`` is ``input`` or ``output``."""

    name: str
    direction: str
    width: int


@dataclass(frozen=True)
class Ports:
    """The ports of the wrapped module, in declaration order."""

    module: str
    ports: tuple[Port, ...]

    @property
    def inputs(self) -> tuple[Port, ...]:
        """Input ports fed from the input chain (every input except ``clk`` and ``rst``)."""
        return tuple(p for p in self.ports if p.direction == "input" and p.name not in _DIRECT)

    @property
    def outputs(self) -> tuple[Port, ...]:
        """Output ports captured by the output chain."""
        return tuple(p for p in self.ports if p.direction == "output")

    @property
    def input_bits(self) -> int:
        """Length of the input chain."""
        return sum(p.width for p in self.inputs)

    @property
    def output_bits(self) -> int:
        """Length of the output chain."""
        return sum(p.width for p in self.outputs)

    @property
    def wrapper_ffs(self) -> int:
        """Flip-flops the wrapper adds: the input chain and the XOR tree's registers."""
        return self.input_bits + sum(xor_tree_levels(self.output_bits))

    @property
    def wrapper_luts(self) -> int:
        """LUT4s the wrapper adds at most: one per XOR-tree register (yosys may pack some
        XORs into the design's own LUTs)."""
        return sum(xor_tree_levels(self.output_bits))


def parse_ports(verilog: str, module: str) -> Ports:
    """The ports of ``module`` in Verilog text written by Amaranth (one declaration a line).

    Raises
    ------
    ValueError
        The module is missing, has no ``clk`` input, or has an ``inout`` port.
    """
    head = re.search(rf"^module\s+{re.escape(module)}\s*\(", verilog, re.MULTILINE)
    if head is None:
        raise ValueError(f"module {module!r} not found in the Verilog")
    end = verilog.find("\nendmodule", head.end())
    body = verilog[head.end(): end if end >= 0 else len(verilog)]
    ports = []
    for m in _PORT.finditer(body):
        if m.group("dir") == "inout":
            raise ValueError(f"module {module!r}: inout port {m.group('name')!r} cannot be "
                             f"wrapped for synthesis")
        width = 1 if m.group("msb") is None else abs(int(m.group("msb")) - int(m.group("lsb"))) + 1
        ports.append(Port(m.group("name"), m.group("dir"), width))
    if not any(p.name == "clk" and p.direction == "input" for p in ports):
        raise ValueError(f"module {module!r} has no clk input; the wrapper needs its clock")
    return Ports(module, tuple(ports))


def submodules(verilog: str, module: str) -> frozenset[str]:
    """Names of the units inside ``module``: Amaranth writes each submodule as its own
    Verilog module named ``<module>.<instance>[.<sub>...]``; a unit is a first-level instance,
    or one level below the chip's clock-domain wrapper (see :func:`.reports.unit_of_module`)."""
    pattern = re.compile(rf"^module\s+\\({re.escape(module)}\.[^\s(]+)", re.MULTILINE)
    units = {unit_of_module(m.group(1), module) for m in pattern.finditer(verilog)}
    return frozenset(units - {"top"})


def xor_tree_levels(bits: int, arity: int = XOR_ARITY) -> list[int]:
    """Register counts of the output XOR tree, level by level, for ``bits`` output bits."""
    levels = []
    while bits > 1:
        bits = -(-bits // arity)
        levels.append(bits)
    return levels


def wrapper_verilog(ports: Ports) -> str:
    """Verilog of the synthesis wrapper :data:`TOP` around ``ports.module``."""
    n_in, n_out = ports.input_bits, ports.output_bits
    lines = [
        f"// OpenLPU synthesis wrapper around {ports.module} (openlpu.fpga.wrapper):",
        f"// {n_in} input bits shift in from sin, {n_out} output bits XOR-reduce to sout.",
        f"module {TOP} (",
        "  input wire clk,",
        "  input wire rst,",
        "  input wire sin,",
        "  input wire shift,",
        "  output wire sout",
        ");",
    ]
    conns = [f".{p.name} ({p.name})" for p in ports.ports if p.name in _DIRECT]
    if n_in == 1:
        lines += ["  reg [0:0] in_chain = 0;",
                  "  always @(posedge clk) if (shift) in_chain <= sin;"]
    elif n_in:
        lines += [f"  reg [{n_in - 1}:0] in_chain = 0;",
                  "  always @(posedge clk) if (shift) "
                  f"in_chain <= {{in_chain[{n_in - 2}:0], sin}};"]
    if n_out:
        # No (* keep *) on out_bits: with it, yosys 0.70's abc9 ties the kept nets to x
        # ("Driver-driver conflict ... Resolved using constant") and deletes the whole chip.
        lines.append(f"  wire [{n_out - 1}:0] out_bits;")
        prev, width = "out_bits", n_out
        for level, regs in enumerate(xor_tree_levels(n_out)):
            name = f"xor{level}"
            lines.append(f"  reg [{regs - 1}:0] {name} = 0;")
            lines.append("  always @(posedge clk) begin")
            for i in range(regs):
                # Strided, not adjacent bits: neighbours of one port (sign-extension copies,
                # say) are the likeliest identical pairs, and a pair in one node cancels.
                terms = " ^ ".join(f"{prev}[{j}]" for j in range(i, width, regs))
                lines.append(f"    {name}[{i}] <= {terms};")
            lines.append("  end")
            prev, width = name, regs
        lines.append(f"  assign sout = {prev}[0];")
    else:
        lines.append("  assign sout = 1'b0;")
    for ports_of, vector in ((ports.inputs, "in_chain"), (ports.outputs, "out_bits")):
        lsb = 0
        for p in ports_of:
            # The space ends an escaped identifier (Verilog needs it there).
            conns.append(f".{p.name} ({vector}[{lsb + p.width - 1}:{lsb}])")
            lsb += p.width
    name = ports.module if re.fullmatch(r"[A-Za-z_][\w$]*", ports.module) else \
        f"\\{ports.module} "
    lines.append(f"  {name} dut (")
    lines.append(",\n".join(f"    {c}" for c in conns))
    lines += ["  );", "endmodule", ""]
    return "\n".join(lines)
