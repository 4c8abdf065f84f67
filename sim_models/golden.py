"""The cycle-exact golden model of an OpenLPU chip.

:class:`GoldenModel` runs a :class:`firmware.program.Program` exactly as the RTL will: one
instruction queue per slice (one per ALU in the VXM), stream registers that move one position
per cycle, two SRAM banks per MEM slice, MXM shadow/active weights and accumulators. It returns
the final SRAM, the exact cycle count and activity counters, and checks the schedule as it goes
(see :mod:`sim_models.errors`).

The model works in cycles of superlane 0 and computes all lanes at once: superlane ``k`` does
the same work ``k`` cycles later with the same data (the diagonal wavefront), and every
cross-superlane instruction has a latency long enough to wait for the whole wavefront (see
:mod:`openlpu.isa`). The whole chip therefore finishes ``superlanes - 1`` cycles after
superlane 0; the reported cycle count includes that drain.

Cycle count: the chip is done in the first cycle ``D`` (of superlane 0) by which every queue
has issued its ``END`` (in cycle ``e``, counting ``e + 1``) and every issued instruction's
latency has elapsed (``t + latency``; ``NOTIFY`` counts 1). ``cycles = D + superlanes - 1``.

The simulation is event driven: a heap holds the next issue cycle of each queue, and idle
cycles cost nothing; stream values are stored per write, not shifted (see
:mod:`sim_models.streams`).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from firmware.program import Program, read_output, write_mem_init
from openlpu import fixedpoint as fx
from openlpu.config import ChipConfig
from openlpu.isa import (
    MXM_PRODUCT_OPS,
    OPS,
    DType,
    Instruction,
    Opcode,
    Unit,
    check_queue_program,
    group_width,
    latency,
    operand_dtype,
    stream_name,
    unit_for_slice,
)

from .datapath import bytes_to_values, sxm_execute, values_to_bytes, vxm_execute
from .errors import (
    AccumulatorHazard,
    BankConflict,
    CycleLimitExceeded,
    Deadlock,
    EmptyStreamRead,
    ScheduleError,
    StreamConflict,
    Violation,
)
from .streams import Producer, StreamFile

__all__ = ["GoldenModel", "RunResult", "StreamWrite", "run_program"]

_PRUNE_EVERY = 1024


@dataclass
class RunResult:
    """What one run of a program produced."""

    cycles: int
    sram: np.ndarray
    outputs: dict[str, np.ndarray]
    counters: dict
    violations: list[Violation] = field(default_factory=list)
    #: Every SRAM word a WRITE or SCATTER touched, as ``(mem slice index, address)``.
    written_words: list[tuple[int, int]] = field(default_factory=list)
    #: With ``write_log``: the SRAM after the program's image was written, before cycle 0.
    sram_start: np.ndarray | None = field(default=None, repr=False)
    #: The ``write_log`` list the model was given (``None`` without one).
    write_log: list | None = field(default=None, repr=False)


@dataclass(frozen=True)
class StreamWrite:
    """One stream-register write: ``value`` (a byte per lane, superlane-0 timing) is present
    at ``position`` during ``cycle`` on stream ``stream`` of ``direction`` (0 east, 1 west)."""

    cycle: int
    direction: int
    stream: int
    position: int
    value: np.ndarray
    producer: Producer


class _QueueState:
    __slots__ = ("name", "index", "slice", "unit", "code", "source", "pc", "prev",
                 "prev_cycle", "rep_left", "rep_d", "rep_step", "ended_at", "parked",
                 "issued", "position")

    def __init__(self, queue, code, source):
        self.name = queue.name
        self.index = queue.index
        self.slice = queue.slice
        self.position = queue.slice.position
        self.unit = unit_for_slice(queue.slice.kind)
        self.code = code
        self.source = source
        self.pc = 0
        self.prev: Instruction | None = None
        self.prev_cycle = -1
        self.rep_left = 0
        self.rep_d = 0
        self.rep_step = 0
        self.ended_at: int | None = None
        self.parked = False
        self.issued = 0


class _Plane:
    """State of one MXM plane."""

    def __init__(self, lanes: int, depth: int):
        self.shadow = np.zeros((lanes, lanes), dtype=np.int8)
        self.weights = np.zeros((lanes, lanes), dtype=np.float64)
        self.acc = np.zeros((depth, lanes), dtype=np.int64)
        self.pending: dict[int, int] = {}  # acc entry -> cycle its last ABC write lands
        # Accumulators are SRAM in hardware and are not cleared by START: reading an entry
        # that no ABC wrote in this run is a schedule error (weights and shadow are registers
        # and do start at zero).
        self.abc = 0
        self.lw_rows = 0


class GoldenModel:
    """Cycle-exact NumPy model and schedule checker of one chip running one program.

    Parameters
    ----------
    config : ChipConfig
        The chip.
    program : Program
        Queues, initial SRAM and output regions; checked against ``config`` first.
    max_cycles : int
        Stop with :class:`CycleLimitExceeded` past this many cycles.
    on_error : {"raise", "collect"}
        ``"raise"`` stops at the first schedule violation; ``"collect"`` records every one in
        :attr:`RunResult.violations` and goes on (an empty slot then reads as zeros, the last
        of two conflicting writes wins).
    trace : list or None
        If a list, every issue is appended as ``(cycle, queue, mnemonic, latency)``.
    stream_log : list or None
        If a list, every stream-register write is appended as a :class:`StreamWrite` (what a
        waveform of the RTL is checked against, cycle by cycle).
    write_log : list or None
        If a list, every ``WRITE`` is appended as ``(cycle, mem slice index, address, word)``
        (the word a copy, ``uint8 [L]``; ``cycle`` its issue), and the result carries
        ``sram_start``: what an SRAM word held at any cycle can be told afterwards (a layer
        that reuses SRAM overwrites its intermediate tensors).
    sram : np.ndarray or None
        The SRAM before the program's own image is written (default: zeros), e.g. the final
        SRAM of the previous program when a host runs several programs in turn without
        clearing it (a layer lowered to several programs). Copied, not modified.
    """

    def __init__(self, config: ChipConfig, program: Program, *, max_cycles: int = 50_000_000,
                 on_error: str = "raise", trace: list | None = None,
                 stream_log: list | None = None, sram: np.ndarray | None = None,
                 write_log: list | None = None):
        if on_error not in ("raise", "collect"):
            raise ValueError(f"on_error must be 'raise' or 'collect', not {on_error!r}")
        program.check(config)
        self.config = config
        self.program = program
        self.max_cycles = max_cycles
        self.on_error = on_error
        self.trace = trace
        self.stream_log = stream_log
        self.lanes = config.lanes
        self.sram = np.zeros((config.mem_slices, config.mem_banks, config.mem_words_per_bank,
                              config.lanes), dtype=np.uint8)
        if sram is not None:
            if sram.shape != self.sram.shape or sram.dtype != np.uint8:
                raise ValueError(f"sram must be uint8 {list(self.sram.shape)} for config "
                                 f"{config.name!r}, not {sram.dtype} {list(sram.shape)}")
            self.sram[...] = sram
        write_mem_init(self.sram, program, config)
        self.write_log = write_log
        self.sram_start = self.sram.copy() if write_log is not None else None
        self.streams = StreamFile(config.positions)
        self.planes = {p: _Plane(config.lanes, config.mxm_acc_depth)
                       for p in range(config.mxm_planes)}
        self.queues: list[_QueueState] = []
        for q in config.queues:
            code = program.queues.get(q.name, [])
            check_queue_program(code, unit_for_slice(q.slice.kind), config, q.name)
            self.queues.append(_QueueState(q, code, program.source.get(q.name, [])))
        self.violations: list[Violation] = []
        self._done = 0
        self._bank_use: dict[tuple[int, int], tuple[int, str]] = {}
        self._written: set[tuple[int, int]] = set()
        self._mem_reads = [0] * config.mem_slices
        self._mem_writes = [0] * config.mem_slices
        self._lane_index = np.arange(config.lanes)
        self._latency = {op: latency(op, config) for op, s in OPS.items()
                         if s.latency is not None}
        self._ops_per_unit = {u: 0 for u in Unit}

    # --- error handling ---------------------------------------------------------------------

    def _violate(self, cls: type[ScheduleError], q: _QueueState | None, cycle: int,
                 slice_name: str, message: str, index: int | None = None, **details) -> None:
        if index is None and q is not None:
            index = q.pc
        source = None
        if q is not None and index is not None and index < len(q.source):
            file, line = q.source[index]
            source = f"{file}:{line}"
        v = Violation(cls.kind, cycle, slice_name, message,
                      None if q is None else q.name, index, source, details)
        if self.on_error == "raise":
            raise cls(v)
        self.violations.append(v)

    # --- streams ------------------------------------------------------------------------------

    def _read_planes(self, q: _QueueState, instr: Instruction, code: int, width: int,
                     t: int) -> list[np.ndarray]:
        direction, base = code >> 5, code & 31
        planes = []
        for k in range(width):
            v = self.streams.read(direction, base + k, q.position, t)
            if v is None:
                name = stream_name(code)
                self._violate(
                    EmptyStreamRead, q, t, q.slice.name,
                    f"{instr.op.name} reads stream {name[0]}{base + k} at position "
                    f"{q.position}, which holds no value in this cycle",
                    stream=f"{name[0]}{base + k}", position=q.position)
                v = np.zeros(self.lanes, dtype=np.uint8)
            planes.append(v)
        return planes

    def _read_values(self, q, instr, fieldname, t) -> np.ndarray:
        dt = operand_dtype(instr, fieldname)
        planes = self._read_planes(q, instr, getattr(instr, fieldname), dt.nbytes, t)
        return bytes_to_values(planes, dt)

    def _write_planes(self, q: _QueueState, instr: Instruction, code: int,
                      planes: list[np.ndarray], t: int, lat: int) -> None:
        direction, base = code >> 5, code & 31
        producer = Producer(q.name, q.pc, t, instr.op.name)
        for k, plane in enumerate(planes):
            clash = self.streams.write(direction, base + k, q.position, t + lat, plane,
                                       producer)
            if self.stream_log is not None:
                self.stream_log.append(StreamWrite(t + lat, direction, base + k, q.position,
                                                   plane, producer))
            if clash is not None:
                s = f"{'E' if direction == 0 else 'W'}{base + k}"
                self._violate(
                    StreamConflict, q, t + lat, q.slice.name,
                    f"{instr.op.name} and {clash} both write stream {s} at position "
                    f"{q.position} in cycle {t + lat}", stream=s, position=q.position)

    # --- units ----------------------------------------------------------------------------------

    def _bank_access(self, q: _QueueState, slice_index: int, bank: int, kind: str,
                     cycle: int) -> None:
        key = (slice_index, cycle)
        other = self._bank_use.get(key)
        if other is not None and other[0] == bank:
            self._violate(BankConflict, q, cycle, q.slice.name,
                          f"bank {bank} is {other[1]} and {kind} in the same cycle "
                          f"(one slice reads one bank while it writes the other)", bank=bank)
        self._bank_use[key] = (bank, kind)

    def _exec_mem(self, q: _QueueState, instr: Instruction, t: int, lat: int) -> None:
        if instr.op is Opcode.RDWR:
            # the read sees the bank before the write, which lands in t + 1
            self._exec_mem(q, Instruction(Opcode.READ, dst=instr.dst, addr=instr.addr), t, lat)
            self._exec_mem(q, Instruction(Opcode.WRITE, addr=instr.waddr, a=instr.a), t, lat)
            return
        cfg = self.config
        si = q.slice.index
        bank = instr.addr >> cfg.offset_bits
        offset = instr.addr & (cfg.mem_words_per_bank - 1)
        op = instr.op
        if op is Opcode.READ or op is Opcode.GATHER:
            self._bank_access(q, si, bank, "read", t)
            if op is Opcode.READ:
                value = self.sram[si, bank, offset].copy()
            else:
                offs = (offset + (self._read_values(q, instr, "b", t) & 0xFFFF)) & (
                    cfg.mem_words_per_bank - 1)
                value = self.sram[si, bank, offs, self._lane_index]
            self._mem_reads[si] += 1
            self._write_planes(q, instr, instr.dst, [value], t, lat)
        else:
            value = self._read_planes(q, instr, instr.a, 1, t)[0]
            if op is Opcode.WRITE:
                self.sram[si, bank, offset] = value
                self._written.add((si, instr.addr))
                if self.write_log is not None:
                    self.write_log.append((t, si, instr.addr, self.sram[si, bank, offset].copy()))
            else:
                offs = (offset + (self._read_values(q, instr, "b", t) & 0xFFFF)) & (
                    cfg.mem_words_per_bank - 1)
                self.sram[si, bank, offs, self._lane_index] = value
                base = bank << cfg.offset_bits
                self._written.update((si, base + int(o)) for o in np.unique(offs))
            self._bank_access(q, si, bank, "written", t + 1)
            self._mem_writes[si] += 1

    def _exec_mxm(self, q: _QueueState, instr: Instruction, t: int, lat: int) -> None:
        plane = self.planes[q.slice.index]
        op = instr.op
        if op is Opcode.LW:
            planes = self._read_planes(q, instr, instr.a, instr.count, t)
            rows = np.stack(planes).view(np.int8)
            plane.shadow[instr.addr:instr.addr + instr.count] = rows
            plane.lw_rows += instr.count
        elif op is Opcode.IW:
            plane.weights = plane.shadow.astype(np.float64)
        elif op in MXM_PRODUCT_OPS:
            x = self._read_planes(q, instr, instr.a, 1, t)[0].view(np.int8)
            # float64 is exact here: |sum| <= 2**14 * lanes << 2**53
            y = (plane.weights @ x.astype(np.float64)).astype(np.int64)
            entry = instr.addr
            if instr.accumulate:
                if entry not in plane.pending:
                    self._violate(AccumulatorHazard, q, t, q.slice.name,
                                  f"{instr.spec.name}.acc adds to accumulator entry {entry}, "
                                  f"which no ABC has written in this run (accumulators are not "
                                  f"cleared by START)", entry=entry)
                y = plane.acc[entry] + y
            plane.acc[entry] = fx.wrap(y, 32)
            plane.pending[entry] = t + lat
            plane.abc += 1
            if op is Opcode.ABCO:
                # the same value the accumulator gets, on the streams when it lands
                planes = values_to_bytes(plane.acc[entry], DType.I32)
                self._write_planes(q, instr, instr.dst, planes, t, lat)
        elif op is Opcode.ACC:
            entry = instr.addr
            lands = plane.pending.get(entry)
            if lands is None:
                self._violate(AccumulatorHazard, q, t, q.slice.name,
                              f"ACC reads accumulator entry {entry}, which no ABC has written "
                              f"in this run (accumulators are not cleared by START)",
                              entry=entry)
            elif lands > t:
                self._violate(AccumulatorHazard, q, t, q.slice.name,
                              f"ACC reads accumulator entry {entry} in cycle {t}, but an ABC "
                              f"writes it in cycle {lands}", entry=entry)
            planes = values_to_bytes(plane.acc[entry], DType.I32)
            self._write_planes(q, instr, instr.dst, planes, t, lat)

    def _exec_sxm(self, q: _QueueState, instr: Instruction, t: int, lat: int) -> None:
        cfg = self.config
        width = group_width(instr, "a", cfg)
        planes = self._read_planes(q, instr, instr.a, width, t)
        map_values = None
        if instr.op in (Opcode.PERMUTE, Opcode.DISTRIBUTE):
            map_values = self._read_values(q, instr, "b", t)
        out = sxm_execute(instr, planes, map_values, cfg.lanes_per_superlane)
        self._write_planes(q, instr, instr.dst, out, t, lat)

    def _exec_vxm(self, q: _QueueState, instr: Instruction, t: int, lat: int) -> None:
        spec = OPS[instr.op]
        a = self._read_values(q, instr, "a", t)
        b = c = None
        if any(f == "b" for f, _ in spec.operands):
            if instr.bimm:
                bits = operand_dtype(instr, "b").bits
                b = np.full(self.lanes, fx.wrap(np.int64(instr.imm), bits), dtype=np.int64)
            else:
                b = self._read_values(q, instr, "b", t)
        if instr.op is Opcode.SEL:
            c = self._read_values(q, instr, "c", t)
        result = vxm_execute(instr, a, b, c)
        self._write_planes(q, instr, instr.dst, values_to_bytes(result, DType(instr.dtype)),
                           t, lat)

    def _issue(self, q: _QueueState, instr: Instruction, t: int) -> None:
        lat = self._latency[instr.op]
        unit = q.unit
        if unit is Unit.MEM:
            self._exec_mem(q, instr, t, lat)
        elif unit is Unit.VXM:
            self._exec_vxm(q, instr, t, lat)
        elif unit is Unit.MXM:
            self._exec_mxm(q, instr, t, lat)
        else:
            self._exec_sxm(q, instr, t, lat)
        q.issued += 1
        self._ops_per_unit[unit] += 1
        if t + lat > self._done:
            self._done = t + lat
        if self.trace is not None:
            self.trace.append((t, q.name, instr.op.name, lat))

    # --- instruction queues --------------------------------------------------------------------

    def _step(self, q: _QueueState, t: int, heap: list) -> bool:
        """Advance queue ``q`` in cycle ``t``; returns whether it issued a NOTIFY."""
        if q.rep_left:
            field_name = q.prev.spec.step_field
            instr = q.prev
            if field_name and q.rep_step:
                instr = instr.replace(**{field_name: getattr(instr, field_name) + q.rep_step})
            self._issue(q, instr, t)
            q.prev, q.prev_cycle = instr, t
            q.rep_left -= 1
            if q.rep_left:
                heapq.heappush(heap, (t + q.rep_d, q.index))
            else:
                q.pc += 1
                heapq.heappush(heap, (t + 1, q.index))
            return False
        instr = q.code[q.pc] if q.pc < len(q.code) else Instruction(Opcode.END)
        op = instr.op
        if op is Opcode.END:
            q.ended_at = t
        elif op is Opcode.NOP:
            q.pc += 1
            heapq.heappush(heap, (t + instr.nop_count, q.index))
        elif op is Opcode.REPEAT:
            q.rep_left, q.rep_d, q.rep_step = instr.rep_n, instr.rep_d, instr.rep_step
            heapq.heappush(heap, (q.prev_cycle + instr.rep_d, q.index))
        elif op is Opcode.SYNC:
            q.pc += 1
            q.parked = True
        elif op is Opcode.NOTIFY:
            q.pc += 1
            self._done = max(self._done, t + 1)
            heapq.heappush(heap, (t + 1, q.index))
            return True
        else:
            self._issue(q, instr, t)
            q.prev, q.prev_cycle = instr, t
            q.pc += 1
            heapq.heappush(heap, (t + 1, q.index))
        return False

    def run(self) -> RunResult:
        """Run the program to completion; see the module docstring for the cycle count."""
        heap = [(0, q.index) for q in self.queues]
        heapq.heapify(heap)
        next_prune = _PRUNE_EVERY
        while heap:
            t = heap[0][0]
            if t > self.max_cycles:
                self._violate(CycleLimitExceeded, None, t, "-",
                              f"still running after {self.max_cycles} cycles")
                break
            notified = False
            while heap and heap[0][0] == t:
                _, qi = heapq.heappop(heap)
                q = self.queues[qi]
                # REPEAT with d == 1 may issue in the cycle it is fetched: step again at once
                notified |= self._step(q, t, heap)
            if notified:
                for q in self.queues:
                    if q.parked:
                        q.parked = False
                        heapq.heappush(heap, (t + 1, q.index))
            if t >= next_prune:
                self.streams.prune(t)
                self._bank_use = {k: v for k, v in self._bank_use.items() if k[1] >= t - 1}
                next_prune = t + _PRUNE_EVERY
            if not heap:
                parked = [q for q in self.queues if q.parked]
                if parked:
                    self._violate(
                        Deadlock, parked[0], t, parked[0].slice.name,
                        "queues parked at SYNC with no queue left to NOTIFY them: "
                        + ", ".join(q.name for q in parked), index=parked[0].pc - 1)
                    break
        ends = [q.ended_at + 1 for q in self.queues if q.ended_at is not None]
        done = max([self._done, *ends])
        cycles = done + self.config.superlanes - 1
        outputs = {r.name: read_output(self.sram, r, self.config)
                   for r in self.program.outputs}
        return RunResult(cycles, self.sram, outputs, self._counters(cycles), self.violations,
                         sorted(self._written), self.sram_start, self.write_log)

    def _counters(self, cycles: int) -> dict:
        cfg = self.config
        macs = sum(p.abc for p in self.planes.values()) * cfg.lanes * cfg.lanes
        return {
            "cycles": cycles,
            "issued": {q.name: q.issued for q in self.queues},
            "mem_reads": {s.name: self._mem_reads[s.index] for s in cfg.mem_slice_list},
            "mem_writes": {s.name: self._mem_writes[s.index] for s in cfg.mem_slice_list},
            "mxm_abc": {f"mxm{p}": plane.abc for p, plane in self.planes.items()},
            "mxm_lw_rows": {f"mxm{p}": plane.lw_rows for p, plane in self.planes.items()},
            "macs": macs,
            "mxm_utilization": macs / (cycles * cfg.macs_per_cycle) if cycles else 0.0,
            "ops_per_unit": {u.name.lower(): n for u, n in self._ops_per_unit.items()
                             if u in (Unit.MEM, Unit.VXM, Unit.MXM, Unit.SXM)},
            "stream_writes": self.streams.writes,
        }


def run_program(config: ChipConfig, program: Program, **kwargs) -> RunResult:
    """Run ``program`` on the golden model of ``config`` (keyword arguments as
    :class:`GoldenModel`)."""
    return GoldenModel(config, program, **kwargs).run()


