"""The one definition of an OpenLPU chip: validated parameters, named presets, derived figures.

Every layer (RTL, golden model, compiler, CLI) takes a :class:`ChipConfig`. The floorplan
(which slice sits at which stream-register position) and the instruction-queue list are derived
here too, so that positions and queue indices are never restated elsewhere.

Floorplan of every superlane, west to east (the published TSP layout, scaled)::

    MXM(outer..inner) | SXM_W | MEM_W(n-1) .. MEM_W0 | VXM | MEM_E0 .. MEM_E(n-1) | SXM_E | MXM

MXM planes alternate between hemispheres: plane 0 west (inner), plane 1 east (inner),
plane 2 west (outer), plane 3 east (outer).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

__all__ = ["ChipConfig", "ConfigError", "PRESETS", "SliceKind", "Slice", "Queue", "get_config"]

#: Hard upper bounds that come from the instruction encoding (see :mod:`openlpu.isa`).
MAX_STREAMS_PER_DIRECTION = 32  # 5-bit stream index
MAX_ADDRESS_BITS = 16  # 1 bank bit + up to 15 offset bits
MAX_ACC_DEPTH = 1 << 16
MAX_LANES = 1 << 12

#: The SXM slices (and queues) west and east of the MEM slices, when ``ChipConfig.sxm`` is true.
SXM_WEST, SXM_EAST = "sxm_w", "sxm_e"
#: The deepest instruction queue (``queue_depth``, in words) a config may have.
MAX_QUEUE_DEPTH = 1 << 16


class ConfigError(ValueError):
    """A chip configuration field is out of its allowed range."""


class SliceKind(enum.Enum):
    """The functional slice types of the floorplan."""

    MEM = "mem"
    VXM = "vxm"
    MXM = "mxm"
    SXM = "sxm"


@dataclass(frozen=True)
class Slice:
    """One functional slice at one stream-register position (west = 0)."""

    name: str
    kind: SliceKind
    position: int
    #: Index within its kind (MEM slices: global SRAM index; MXM: plane number).
    index: int


@dataclass(frozen=True)
class Queue:
    """One ICU instruction queue, feeding one slice (or one VXM ALU)."""

    name: str
    index: int
    slice: Slice


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclass(frozen=True)
class ChipConfig:
    """Parameters of one OpenLPU chip.

    Parameters
    ----------
    name : str
        Preset or user-chosen name; part of the config hash.
    superlanes : int
        Number of superlanes (1..256). Instructions and data reach superlane ``k`` one cycle
        after superlane ``k-1``.
    lanes_per_superlane : int
        Byte lanes per superlane, a power of two (1..16). A vector has
        ``superlanes * lanes_per_superlane`` lanes.
    streams_per_direction : int
        Byte streams flowing east and (as many) west, 4..32, a multiple of 4 (int32 values use
        aligned groups of 4 streams) and at least ``lanes_per_superlane`` (``TRANSPOSE``).
    mem_slices_per_hemisphere : int
        MEM slices on each side of the VXM (1..64).
    mem_words_per_bank : int
        Vector words per SRAM bank (2 banks per slice), a power of two, 16..32768.
    mxm_planes : int
        Matrix planes of ``lanes x lanes`` int8 MACs (1..4), alternating west/east.
    mxm_acc_depth : int
        int32 accumulator vectors per MXM plane (1..65536).
    vxm_alus_per_lane : int
        VXM ALUs per lane (1..16); each has its own instruction queue.
    queue_depth : int
        Instruction words per ICU queue in the RTL (a power of two, 16..65536).
    clock_mhz : float
        Nominal clock, used for derived throughput figures only.
    vxm_special_alus : int
        How many VXM ALUs per lane (queues ``vxm0`` .. ``vxm{n-1}``) have the special-function
        unit (``EXP``, ``RECIP``, ``RSQRT``, ``SIGMOID``, ``TANH``, ``GELU``, ``SILU``),
        0..``vxm_alus_per_lane``; default 1. It costs about eight wide multipliers and two
        ROMs per lane, so small FPGA presets leave it out (0) and the assembler and golden
        model refuse these opcodes.
    vxm_multiplier : bool
        Whether the VXM ALUs have the signed 32 x 32 multiplier of ``MUL`` and ``REQ``
        (default True: every ALU has one). Without it both opcodes are refused.
    vxm_deep_pipeline : bool
        Whether the VXM is pipelined for FPGA clock rates (default False): every wide
        multiplier is split into registered 17-bit partial products (one FPGA multiplier each)
        and their sum, long adder chains get a cycle of their own, and every result is
        registered before the stream write. The results are the same; every VXM latency grows
        (``ADD`` 2 -> 4, ``MUL`` 3 -> 5, ``EXP`` 6 -> 15, ``RSQRT`` 8 -> 29, see
        :mod:`openlpu.isa`) and so do the flip-flops.
    perf_counters : bool
        Whether the chip has its performance counters (default True: per queue the unit
        instructions issued, per MEM slice the reads and writes, per MXM plane the ``ABC``
        count; :attr:`openlpu.hostmap.HostMap.counter_names`). Without them the host map has
        no counters (``NCOUNTERS`` reads 0); the cycle count stays.
    icu_repeat : bool
        Whether the instruction queues execute ``REPEAT`` (default True). Without it the
        assembler and golden model refuse ``REPEAT`` and the compiler writes every repetition
        out as its own instruction word (longer queues, the same schedule).
    icu_prefetch : bool
        Whether each instruction queue keeps the word it executes in a register of its own and
        prefetches the next one (default True): its decode then starts from a flip-flop, not
        from the block RAM's clock-to-output time, which an ECP5 clock rate needs. Without it
        the word executed is the block RAM's output itself: 128 fewer flip-flops per queue
        (the word and a copy of word 0) for a slower decode path. Programs and timing are
        the same.
    sxm : bool
        Whether the chip has its two SXMs, ``sxm_w`` and ``sxm_e`` (default True). Without them
        the floorplan has neither the two slices nor their queues, so ``SHIFT``, ``PERMUTE``,
        ``DISTRIBUTE`` and ``TRANSPOSE`` have nowhere to run: the assembler and the golden
        model refuse the queues, and the layer compiler (which needs lane movement for its
        reductions) refuses the config. On one lane, where an SXM can only copy or zero a
        vector, this saves the two SXMs, their queues and two stream-register positions.
    """

    name: str
    superlanes: int
    lanes_per_superlane: int
    streams_per_direction: int
    mem_slices_per_hemisphere: int
    mem_words_per_bank: int
    mxm_planes: int
    mxm_acc_depth: int
    vxm_alus_per_lane: int
    queue_depth: int
    clock_mhz: float
    vxm_special_alus: int = 1
    vxm_multiplier: bool = True
    vxm_deep_pipeline: bool = False
    perf_counters: bool = True
    icu_repeat: bool = True
    icu_prefetch: bool = True
    sxm: bool = True

    def __post_init__(self):
        def need(field, ok, allowed):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(
                    f"config {self.name!r}: field {field!r} must be a number, not {value!r}")
            if not ok(value):
                raise ConfigError(
                    f"config {self.name!r}: field {field!r} = {value!r} is out of range; "
                    f"allowed: {allowed}")

        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"config name must be a non-empty string, not {self.name!r}")
        for field in ("superlanes", "lanes_per_superlane", "streams_per_direction",
                      "mem_slices_per_hemisphere", "mem_words_per_bank", "mxm_planes",
                      "mxm_acc_depth", "vxm_alus_per_lane", "queue_depth"):
            need(field, lambda v: isinstance(v, int), "an integer")
        need("superlanes", lambda v: 1 <= v <= 256, "1..256")
        need("lanes_per_superlane", lambda v: _is_pow2(v) and v <= 16,
             "a power of two, 1..16")
        need("streams_per_direction",
             lambda v: 4 <= v <= MAX_STREAMS_PER_DIRECTION and v % 4 == 0,
             f"a multiple of 4, 4..{MAX_STREAMS_PER_DIRECTION}")
        need("streams_per_direction", lambda v: v >= self.lanes_per_superlane,
             f">= lanes_per_superlane ({self.lanes_per_superlane}), for TRANSPOSE")
        need("mem_slices_per_hemisphere", lambda v: 1 <= v <= 64, "1..64")
        need("mem_words_per_bank",
             lambda v: _is_pow2(v) and 16 <= v <= 1 << (MAX_ADDRESS_BITS - 1),
             f"a power of two, 16..{1 << (MAX_ADDRESS_BITS - 1)}")
        need("mxm_planes", lambda v: 1 <= v <= 4, "1..4")
        need("mxm_acc_depth", lambda v: 1 <= v <= MAX_ACC_DEPTH, f"1..{MAX_ACC_DEPTH}")
        need("vxm_alus_per_lane", lambda v: 1 <= v <= 16, "1..16")
        need("queue_depth", lambda v: _is_pow2(v) and 16 <= v <= MAX_QUEUE_DEPTH,
             f"a power of two, 16..{MAX_QUEUE_DEPTH}")
        need("clock_mhz", lambda v: 0 < v <= 10000, "0 < clock_mhz <= 10000")
        need("vxm_special_alus", lambda v: isinstance(v, int), "an integer")
        need("vxm_special_alus", lambda v: 0 <= v <= self.vxm_alus_per_lane,
             f"0..vxm_alus_per_lane ({self.vxm_alus_per_lane})")
        for field in ("vxm_multiplier", "vxm_deep_pipeline", "perf_counters", "icu_repeat",
                      "icu_prefetch", "sxm"):
            if not isinstance(getattr(self, field), bool):
                raise ConfigError(f"config {self.name!r}: field {field!r} must be true or "
                                  f"false, not {getattr(self, field)!r}")
        if self.lanes > MAX_LANES:
            raise ConfigError(f"config {self.name!r}: {self.lanes} lanes exceed {MAX_LANES}")

    # --- derived figures -------------------------------------------------------------------

    @property
    def lanes(self) -> int:
        """Byte lanes of one vector (``superlanes * lanes_per_superlane``)."""
        return self.superlanes * self.lanes_per_superlane

    @property
    def mem_slices(self) -> int:
        """MEM slices in both hemispheres."""
        return 2 * self.mem_slices_per_hemisphere

    @property
    def mem_banks(self) -> int:
        """SRAM banks per MEM slice (pseudo dual port: one reads while the other writes)."""
        return 2

    @property
    def offset_bits(self) -> int:
        """Bits of the word offset within a bank."""
        return self.mem_words_per_bank.bit_length() - 1

    @property
    def address_space(self) -> int:
        """Addresses per MEM slice: the bank bit sits just above the offset bits."""
        return self.mem_banks * self.mem_words_per_bank

    @property
    def sram_bytes(self) -> int:
        """Total on-chip SRAM."""
        return self.mem_slices * self.mem_banks * self.mem_words_per_bank * self.lanes

    @property
    def macs_per_cycle(self) -> int:
        """int8 multiply-accumulates per cycle over all MXM planes."""
        return self.mxm_planes * self.lanes * self.lanes

    @property
    def vxm_alu_count(self) -> int:
        """VXM ALUs on the chip (``vxm_alus_per_lane`` per lane)."""
        return self.vxm_alus_per_lane * self.lanes

    @property
    def peak_int8_tops(self) -> float:
        """Peak int8 tera-operations per second (2 ops per MAC) at ``clock_mhz``."""
        return self.macs_per_cycle * 2 * self.clock_mhz * 1e6 / 1e12

    @property
    def sram_bytes_per_cycle(self) -> int:
        """SRAM bandwidth: every slice reads one vector and writes one vector per cycle."""
        return self.mem_slices * self.mem_banks * self.lanes

    @property
    def sram_read_bytes_per_cycle(self) -> int:
        """SRAM read bandwidth: every slice reads one vector per cycle (the most weight bytes
        the ``LW``\\ s of one cycle can gather)."""
        return self.mem_slices * self.lanes

    @property
    def stream_bytes_per_cycle(self) -> int:
        """Bytes that cross one stream-register position per cycle, both directions."""
        return 2 * self.streams_per_direction * self.lanes

    @property
    def mxm_planes_west(self) -> int:
        """MXM planes in the west hemisphere (even plane numbers)."""
        return (self.mxm_planes + 1) // 2

    def vxm_alu_has_special(self, alu: int) -> bool:
        """Whether VXM ALU ``alu`` (queue ``vxm{alu}``) has the special-function unit."""
        return 0 <= alu < self.vxm_special_alus

    # --- floorplan ---------------------------------------------------------------------------

    @cached_property
    def slices(self) -> tuple[Slice, ...]:
        """Every slice, ordered west to east by stream-register position."""
        names: list[tuple[str, SliceKind, int]] = []
        west_planes = [p for p in range(self.mxm_planes) if p % 2 == 0]
        east_planes = [p for p in range(self.mxm_planes) if p % 2 == 1]
        for plane in reversed(west_planes):
            names.append((f"mxm{plane}", SliceKind.MXM, plane))
        if self.sxm:
            names.append((SXM_WEST, SliceKind.SXM, 0))
        n = self.mem_slices_per_hemisphere
        for i in reversed(range(n)):
            names.append((f"mem_w{i}", SliceKind.MEM, i))
        names.append(("vxm", SliceKind.VXM, 0))
        for i in range(n):
            names.append((f"mem_e{i}", SliceKind.MEM, n + i))
        if self.sxm:
            names.append((SXM_EAST, SliceKind.SXM, 1))
        for plane in east_planes:
            names.append((f"mxm{plane}", SliceKind.MXM, plane))
        return tuple(Slice(name, kind, pos, index)
                     for pos, (name, kind, index) in enumerate(names))

    @property
    def positions(self) -> int:
        """Stream-register positions, one per slice."""
        return len(self.slices)

    @cached_property
    def slice_by_name(self) -> dict[str, Slice]:
        """Slices keyed by name (``mem_w0``, ``vxm``, ``sxm_e``, ``mxm1``, ...)."""
        return {s.name: s for s in self.slices}

    @cached_property
    def mem_slice_list(self) -> tuple[Slice, ...]:
        """MEM slices ordered by their SRAM index (west 0..n-1, then east 0..n-1)."""
        return tuple(sorted((s for s in self.slices if s.kind is SliceKind.MEM),
                            key=lambda s: s.index))

    @cached_property
    def queues(self) -> tuple[Queue, ...]:
        """Every ICU queue. VXM ALU queues are named ``vxm0``.. and share the VXM slice."""
        out: list[Queue] = []
        for s in self.slices:
            if s.kind is SliceKind.VXM:
                for alu in range(self.vxm_alus_per_lane):
                    out.append(Queue(f"vxm{alu}", len(out), s))
            else:
                out.append(Queue(s.name, len(out), s))
        return tuple(out)

    @cached_property
    def queue_by_name(self) -> dict[str, Queue]:
        """Queues keyed by name."""
        return {q.name: q for q in self.queues}

    def unknown_queue(self, name: str) -> str:
        """Why ``name`` is not a queue of this config, with the queues it has: the message of
        the assembler, the program loader and the scheduler."""
        why = ""
        if name in (SXM_WEST, SXM_EAST) and not self.sxm:
            why = " (this config has no SXMs: sxm = false)"
        return (f"unknown queue {name!r}{why} for config {self.name!r}; queues: "
                f"{', '.join(self.queue_by_name)}")

    # --- identity ------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The defining fields (not derived figures), JSON-serialisable."""
        return dataclasses.asdict(self)

    def summary(self) -> dict:
        """Defining fields plus derived figures, as printed by ``openlpu info``."""
        return {
            **self.to_dict(),
            "lanes": self.lanes,
            "mem_slices": self.mem_slices,
            "mem_banks_per_slice": self.mem_banks,
            "sram_bytes": self.sram_bytes,
            "sram_mib": self.sram_bytes / 2**20,
            "macs_per_cycle": self.macs_per_cycle,
            "vxm_alus": self.vxm_alu_count,
            "peak_int8_tops": self.peak_int8_tops,
            "sram_bytes_per_cycle": self.sram_bytes_per_cycle,
            "sram_read_bytes_per_cycle": self.sram_read_bytes_per_cycle,
            "stream_bytes_per_cycle": self.stream_bytes_per_cycle,
            "positions": self.positions,
            "queues": len(self.queues),
            "config_hash": self.config_hash,
        }

    @cached_property
    def config_hash(self) -> str:
        """32-bit hex hash of the defining fields except the name and clock.

        Two configs with the same hardware have the same hash, whatever they are called; a
        program assembled for one runs on the other.
        """
        fields = {k: v for k, v in self.to_dict().items() if k not in ("name", "clock_mhz")}
        # Resource options at their default value are left out, so that a config written
        # before they existed (and every chip built from it) keeps its hash.
        for f in dataclasses.fields(self):
            if f.default is not dataclasses.MISSING and fields.get(f.name) == f.default:
                del fields[f.name]
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).digest()
        return digest[:4].hex()

    def replace(self, **changes) -> ChipConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, ChipConfig] = {
    # The published chip (tsp-architecture.md): 20 x 16 lanes, 32 streams each way,
    # 44 MEM slices per hemisphere of 2 x 4096 words, 4 planes of 320 x 320, 16 ALUs per lane.
    # Accumulators: "two 32-bit accumulators per MAC cell" = 2 x 320 x 320 = 640 vectors.
    # Queue depth is not public.
    "groqchip": ChipConfig(
        name="groqchip", superlanes=20, lanes_per_superlane=16, streams_per_direction=32,
        mem_slices_per_hemisphere=44, mem_words_per_bank=4096, mxm_planes=4,
        mxm_acc_depth=640, vxm_alus_per_lane=16, queue_depth=8192, clock_mhz=900.0),
    # RTL simulation of whole transformer layers: 32 lanes, 4 MiB of SRAM.
    "sim": ChipConfig(
        name="sim", superlanes=2, lanes_per_superlane=16, streams_per_direction=16,
        mem_slices_per_hemisphere=8, mem_words_per_bank=4096, mxm_planes=2,
        mxm_acc_depth=256, vxm_alus_per_lane=4, queue_depth=4096, clock_mhz=100.0),
    # Lattice LFE5U-85F (ULX3S): 16 lanes in 2 superlanes, 16x16 MXM. Four MEM slices per
    # hemisphere so an int32 operand (4 byte streams) can come straight out of SRAM; each
    # lane of a slice fits one DP16KD (2048 x 9: both 1024-word banks, read on one port and
    # write on the other) -> 128 of the 208 block RAMs.
    "ecp5": ChipConfig(
        name="ecp5", superlanes=2, lanes_per_superlane=8, streams_per_direction=8,
        mem_slices_per_hemisphere=4, mem_words_per_bank=1024, mxm_planes=1,
        mxm_acc_depth=64, vxm_alus_per_lane=2, queue_depth=512, clock_mhz=100.0,
        vxm_deep_pipeline=True),
    # Lattice iCE40 UP5K (iCEBreaker): one lane, one MEM slice of 2 x 256 words per hemisphere
    # (1 KiB of SRAM), a 1 x 1 MXM plane, one VXM ALU, 64-word queues, and every resource option
    # off: no special functions, no 32 x 32 multiplier (MUL, REQ), no performance counters, no
    # REPEAT, no ICU prefetch register and no SXMs. With the iCEBreaker board top (UART bridge)
    # it takes 5,176 of the UP5K's 5,280 logic cells, 23 of 30 block RAMs and 1 of 8 DSPs, and
    # meets the board's 12 MHz (docs/fpga.md, "What it takes to fit the UP5K").
    "ice40": ChipConfig(
        name="ice40", superlanes=1, lanes_per_superlane=1, streams_per_direction=4,
        mem_slices_per_hemisphere=1, mem_words_per_bank=256, mxm_planes=1,
        mxm_acc_depth=16, vxm_alus_per_lane=1, queue_depth=64, clock_mhz=12.0,
        vxm_special_alus=0, vxm_multiplier=False, perf_counters=False, icu_repeat=False,
        icu_prefetch=False, sxm=False),
    # The smallest chip with every unit and every opcode: 4 lanes, one 4 x 4 MXM plane, two MEM
    # slices of 2 x 256 words per hemisphere, the deep VXM pipeline. The default config of fast
    # RTL tests; on FPGAs it is about ten times the UP5K and does not route on the 85F
    # (docs/fpga.md). With 2 MEM slices per hemisphere, int32 operands are assembled in the VXM
    # rather than read in one cycle. (Until the UP5K chip above existed this was the ice40
    # preset; the config hash, 9dbdeec9, is the same.)
    "small": ChipConfig(
        name="small", superlanes=1, lanes_per_superlane=4, streams_per_direction=4,
        mem_slices_per_hemisphere=2, mem_words_per_bank=256, mxm_planes=1,
        mxm_acc_depth=16, vxm_alus_per_lane=1, queue_depth=64, clock_mhz=24.0,
        vxm_deep_pipeline=True),
}


def get_config(name_or_path: str, **overrides) -> ChipConfig:
    """A preset by name, or a config from a JSON file, with optional field overrides.

    Raises
    ------
    ConfigError
        Unknown preset, unreadable file, unknown field or out-of-range value.
    """
    if name_or_path in PRESETS:
        base = dataclasses.asdict(PRESETS[name_or_path])
    elif name_or_path.endswith(".json"):
        try:
            with open(name_or_path) as f:
                base = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read config file {name_or_path!r}: {e}") from None
        if not isinstance(base, dict):
            raise ConfigError(f"config file {name_or_path!r} must hold a JSON object")
        base.setdefault("name", name_or_path.rsplit("/", 1)[-1].removesuffix(".json"))
    else:
        raise ConfigError(
            f"unknown config {name_or_path!r}; presets: {', '.join(PRESETS)} "
            f"(or a path to a .json file)")
    base.update(overrides)
    known = {f.name for f in dataclasses.fields(ChipConfig)}
    unknown = sorted(set(base) - known)
    if unknown:
        raise ConfigError(f"config {base.get('name')!r}: unknown field(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    optional = {f.name for f in dataclasses.fields(ChipConfig)
                if f.default is not dataclasses.MISSING}
    missing = sorted(known - optional - set(base))
    if missing:
        raise ConfigError(f"config {base.get('name')!r}: missing field(s) {', '.join(missing)}")
    return ChipConfig(**base)
