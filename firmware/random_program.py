"""Constrained-random valid programs, for regression of the golden model and the RTL.

:func:`random_program` builds a program of timed transactions over every slice type — MEM
copies, VXM operations of every opcode and type, SXM lane moves, MXM weight loads, matrix-vector
products and accumulator reads — and schedules them so that the result is a *valid* schedule:
every stream value is consumed exactly where and when it is present, no two producers write one
stream register in one cycle, no value is overwritten on its way, no bank is read and written
in one cycle, and no accumulator is read before its ABC lands. The same seed gives the same
program, so a failing seed can be replayed.
"""

from __future__ import annotations

import numpy as np

from openlpu.config import ChipConfig
from openlpu.isa import (
    OPS,
    DType,
    Instruction,
    Opcode,
    Unit,
    latency,
    stream_code,
)

from .program import MemInit, OutputRegion, Program
from .schedule import ScheduleBuilder

__all__ = ["random_program"]

_OUT_DTYPE = {1: "int8", 2: "int16", 4: "int32"}


class _Reservations:
    """Stream-register cells, bank accesses and accumulator entries already promised."""

    def __init__(self):
        self.cells: set[tuple[int, int, int, int]] = set()  # (dir, stream, position, cycle)
        self.banks: dict[tuple[str, int], int] = {}  # (slice, cycle) -> bank
        self.acc_busy_until: dict[tuple[int, int], int] = {}

    @staticmethod
    def path(direction: int, stream: int, p: int, w: int, q: int):
        step = 1 if direction == 0 else -1
        return [(direction, stream, p + i * step, w + i) for i in range(abs(q - p) + 1)]

    def free(self, cells) -> bool:
        return not any(c in self.cells for c in cells)

    def bank_ok(self, slice_name: str, cycle: int, bank: int) -> bool:
        return self.banks.get((slice_name, cycle), 1 - bank) != bank


class _Generator:
    def __init__(self, config: ChipConfig, seed: int):
        self.cfg = config
        self.rng = np.random.default_rng(seed)
        self.b = ScheduleBuilder(config)
        self.res = _Reservations()
        self.mem_init: list[MemInit] = []
        self.outputs: list[OutputRegion] = []
        self.next_offset: dict[tuple[str, int], int] = {}
        self.mems = [s.name for s in config.mem_slice_list]
        self.weights_installed = {p: False for p in range(config.mxm_planes)}
        self.shadow_loaded = {p: False for p in range(config.mxm_planes)}
        self.acc_written: dict[tuple[int, int], int] = {}

    # --- resources ---------------------------------------------------------------------------

    def word(self, slice_name: str, bank: int) -> int | None:
        """A fresh SRAM address in ``bank`` of ``slice_name`` (each word is used once)."""
        key = (slice_name, bank)
        off = self.next_offset.get(key, 0)
        if off >= self.cfg.mem_words_per_bank:
            return None
        self.next_offset[key] = off + 1
        return (bank << self.cfg.offset_bits) + off

    def pos(self, name: str) -> int:
        return self.b.position(name)

    def transfer_cells(self, src: str, issue: int, op: Opcode, dst: str, stream: int):
        direction = self.b.direction(src, dst).value
        w = issue + latency(op, self.cfg)
        return self.res.path(direction, stream, self.pos(src), w, self.pos(dst))

    def find_streams(self, src: str, issue: int, op: Opcode, dst: str, width: int,
                     align: int | None = None):
        """An aligned free stream group carrying ``op``'s result from src to dst."""
        s_total = self.cfg.streams_per_direction
        align = align or width
        starts = [s for s in range(0, s_total - width + 1, align)]
        self.rng.shuffle(starts)
        for s in starts:
            cells = [c for k in range(width)
                     for c in self.transfer_cells(src, issue, op, dst, s + k)]
            if self.res.free(cells):
                return s, cells
        return None, None

    # --- transactions ------------------------------------------------------------------------

    def read_to(self, slices: list[str], values: np.ndarray, dtype: DType, unit: str,
                cycle: int, streams: int | None = None):
        """Plan READs of ``values`` (byte k from slices[k]) to arrive at ``unit`` in ``cycle``.

        Returns (stream base, plan) or None; the plan is committed with :meth:`commit`."""
        planes = np.ascontiguousarray(values.astype({1: np.int8, 2: np.int16,
                                                     4: np.int32}[dtype.nbytes]))
        planes = planes.view(np.uint8).reshape(-1, dtype.nbytes)
        direction = {self.b.direction(s, unit) for s in slices}
        if len(direction) != 1 or any(self.pos(s) == self.pos(unit) for s in slices):
            return None
        issues = [self.b.issue_for(s, Opcode.READ, unit, cycle) for s in slices]
        if min(issues) < 0 or any(self.b.busy(s, t) for s, t in zip(slices, issues, strict=True)):
            return None
        if streams is None:
            cand = [c for c in range(0, self.cfg.streams_per_direction - dtype.nbytes + 1,
                                     dtype.nbytes)]
            self.rng.shuffle(cand)
        else:
            cand = [streams]
        for base in cand:
            cells = [c for k, (s, t) in enumerate(zip(slices, issues, strict=True))
                     for c in self.transfer_cells(s, t, Opcode.READ, unit, base + k)]
            if not self.res.free(cells):
                continue
            plan = []
            for k, (s, t) in enumerate(zip(slices, issues, strict=True)):
                bank = int(self.rng.integers(0, 2))
                if not self.res.bank_ok(s, t, bank):
                    bank = 1 - bank
                    if not self.res.bank_ok(s, t, bank):
                        break
                addr = self.word(s, bank)
                if addr is None:
                    break
                plan.append((s, t, bank, addr, planes[:, k].copy(), base + k))
            else:
                d = self.b.direction(slices[0], unit)
                return stream_code(d, base), (plan, cells, d)
        return None

    def commit_reads(self, planned) -> None:
        plan, cells, d = planned
        for s, t, bank, addr, data, stream in plan:
            self.mem_init.append(MemInit(s, addr, data.reshape(1, -1)))
            self.b.place(s, t, Instruction(Opcode.READ, dst=stream_code(d, stream), addr=addr))
            self.res.banks[(s, t)] = bank
        self.res.cells.update(cells)

    def write_from(self, unit: str, issue: int, op: Opcode, width: int, name: str):
        """Plan and commit WRITEs catching ``op``'s ``width``-stream result into MEM slices
        downstream of ``unit``; returns the stream code of the result or None."""
        lat = latency(op, self.cfg)
        for _ in range(8):
            direction = int(self.rng.integers(0, 2))
            down = [m for m in self.mems if (self.pos(m) > self.pos(unit)) == (direction == 0)
                    and self.pos(m) != self.pos(unit)]
            if len(down) < width:
                continue
            writers = list(self.rng.choice(down, size=width, replace=False))
            arrivals = [self.b.arrival(unit, issue, op, w) for w in writers]
            if any(self.b.busy(w, t) for w, t in zip(writers, arrivals, strict=True)):
                continue
            s_total = self.cfg.streams_per_direction
            starts = list(range(0, s_total - width + 1, width))
            self.rng.shuffle(starts)
            for base in starts:
                cells = [c for k, w in enumerate(writers)
                         for c in self.res.path(direction, base + k, self.pos(unit),
                                                issue + lat, self.pos(w))]
                if not self.res.free(cells):
                    continue
                banks, addrs = [], []
                for w, t in zip(writers, arrivals, strict=True):
                    bank = 1 if self.res.bank_ok(w, t + 1, 1) else 0
                    if not self.res.bank_ok(w, t + 1, bank):
                        break
                    banks.append(bank)
                    addrs.append(None)
                if len(banks) < width:
                    continue
                # one address, valid in every writer's bank, so the region is one output
                offs = max(self.next_offset.get((w, bk), 0)
                           for w, bk in zip(writers, banks, strict=True))
                if offs >= self.cfg.mem_words_per_bank or len(set(banks)) != 1:
                    continue
                addr = (banks[0] << self.cfg.offset_bits) + offs
                code = stream_code(direction, base)
                for k, (w, t) in enumerate(zip(writers, arrivals, strict=True)):
                    self.next_offset[(w, banks[0])] = offs + 1
                    self.b.place(w, t, Instruction(Opcode.WRITE, addr=addr, a=code + k))
                    self.res.banks[(w, t + 1)] = banks[0]
                self.res.cells.update(cells)
                self.outputs.append(OutputRegion(name, tuple(writers), addr, 1,
                                                 _OUT_DTYPE[width]))
                return code
        return None

    def rand_values(self, dtype: DType, n: int) -> np.ndarray:
        lo, hi = -(1 << (dtype.bits - 1)), (1 << (dtype.bits - 1)) - 1
        v = self.rng.integers(lo, hi, size=n, endpoint=True)
        edges = np.array([lo, hi, 0, -1, 1])[: n]
        v[: len(edges)] = edges
        return self.rng.permutation(v)

    def sources_for(self, unit: str, width: int) -> list[str] | None:
        """``width`` MEM slices on one side of ``unit``, all upstream of it."""
        sides = [[m for m in self.mems if self.pos(m) < self.pos(unit)],
                 [m for m in self.mems if self.pos(m) > self.pos(unit)]]
        sides = [s for s in sides if len(s) >= width]
        if not sides:
            return None
        side = sides[int(self.rng.integers(0, len(sides)))]
        return list(self.rng.choice(side, size=width, replace=False))

    def t_vxm(self, cycle: int, n: int) -> bool:
        cfg = self.cfg
        spec = OPS[self.rng.choice([s.opcode for s in OPS.values() if s.unit is Unit.VXM])]
        dt = DType(self.rng.choice([d.value for d in spec.dtypes]))
        op = spec.opcode
        stype = dt
        if op is Opcode.CVT:
            stype = DType(self.rng.integers(0, 3))
        if op is Opcode.REQ:
            stype = DType.I32
        alu = f"vxm{self.rng.integers(0, cfg.vxm_alus_per_lane)}"
        if self.b.busy(alu, cycle):
            return False
        fields = {"dtype": dt.value, "stype": stype.value}
        plans = []
        operands = [("a", stype)]
        has_b = any(f == "b" for f, _ in spec.operands)
        b_imm = has_b and self.rng.random() < 0.3
        if has_b and not b_imm:
            operands.append(("b", DType.I32 if op is Opcode.REQ else stype))
        if op is Opcode.SEL:
            operands.append(("c", stype))
        used = set()
        taken = []
        for name, t in operands:
            srcs = self.sources_for("vxm", t.nbytes)
            if srcs is None or used & set(srcs):
                return False
            planned = self.read_to(srcs, self.rand_values(t, cfg.lanes), t, "vxm", cycle)
            if planned is None:
                return False
            code, plan = planned
            # do not let two operands share streams or slices
            if any(c in taken for c in plan[1]):
                return False
            taken.extend(plan[1])
            used |= set(srcs)
            fields[name] = code
            plans.append(plan)
        if b_imm:
            bits = (DType.I32 if op is Opcode.REQ else stype).bits
            shifts = {Opcode.SHL, Opcode.SHR, Opcode.SHRU, Opcode.SHRR}
            if op in shifts:
                imm = int(self.rng.integers(0, bits))
            else:
                lim = min(1 << (bits - 1), 1 << 23)
                imm = int(self.rng.integers(-lim, lim))
            fields.update(bimm=1, imm=imm)
        if op is Opcode.REQ:
            fields["c"] = int(self.rng.integers(0, 40))
        for p in plans:
            self.commit_reads(p)
        instr = Instruction(op, **fields)
        code = self.write_from("vxm", cycle, op, dt.nbytes, f"t{n}")
        if code is None:
            return True  # reads committed; result unobserved but the schedule stays valid
        self.b.place(alu, cycle, instr.replace(dst=code))
        return True

    def t_copy(self, cycle: int, n: int) -> bool:
        src = self.mems[int(self.rng.integers(0, len(self.mems)))]
        dst = [m for m in self.mems if m != src]
        dst = dst[int(self.rng.integers(0, len(dst)))]
        planned = self.read_to([src], self.rand_values(DType.I8, self.cfg.lanes), DType.I8,
                               dst, cycle)
        if planned is None or self.b.busy(dst, cycle):
            return False
        code, plan = planned
        bank = 1 if self.res.bank_ok(dst, cycle + 1, 1) else 0
        if not self.res.bank_ok(dst, cycle + 1, bank):
            return False
        addr = self.word(dst, bank)
        if addr is None:
            return False
        self.commit_reads(plan)
        self.b.place(dst, cycle, Instruction(Opcode.WRITE, addr=addr, a=code))
        self.res.banks[(dst, cycle + 1)] = bank
        self.outputs.append(OutputRegion(f"t{n}", (dst,), addr, 1, "int8"))
        return True

    def t_sxm(self, cycle: int, n: int) -> bool:
        cfg = self.cfg
        sxm = ["sxm_w", "sxm_e"][int(self.rng.integers(0, 2))]
        if self.b.busy(sxm, cycle):
            return False
        op = Opcode(self.rng.choice([Opcode.SHIFT.value, Opcode.PERMUTE.value,
                                     Opcode.DISTRIBUTE.value]))
        dt = DType(self.rng.integers(0, 3))
        srcs = self.sources_for(sxm, dt.nbytes)
        if srcs is None:
            return False
        planned = self.read_to(srcs, self.rand_values(dt, cfg.lanes), dt, sxm, cycle)
        if planned is None:
            return False
        a, plan_a = planned
        fields = {"a": a, "dtype": dt.value, "stype": dt.value}
        plans = [plan_a]
        if op is Opcode.SHIFT:
            fields["imm"] = int(self.rng.integers(-cfg.lanes, cfg.lanes + 1))
        else:
            mt = DType.I16 if op is Opcode.PERMUTE else DType.I8
            hi = cfg.lanes if op is Opcode.PERMUTE else cfg.lanes_per_superlane
            srcs_m = self.sources_for(sxm, mt.nbytes)
            if srcs_m is None or set(srcs_m) & set(srcs):
                return False
            mp = self.rng.integers(0, hi + 2, size=cfg.lanes)
            pm = self.read_to(srcs_m, mp, mt, sxm, cycle)
            if pm is None or any(c in plan_a[1] for c in pm[1][1]):
                return False
            fields["b"] = pm[0]
            plans.append(pm[1])
        for p in plans:
            self.commit_reads(p)
        code = self.write_from(sxm, cycle, op, dt.nbytes, f"t{n}")
        if code is not None:
            self.b.place(sxm, cycle, Instruction(op, dst=code, **fields))
        return True

    def t_mxm(self, cycle: int, n: int) -> bool:
        cfg = self.cfg
        plane = int(self.rng.integers(0, cfg.mxm_planes))
        q = f"mxm{plane}"
        choice = self.rng.random()
        if self.b.busy(q, cycle):
            return False
        if choice < 0.4 or not self.shadow_loaded[plane]:
            count = int(self.rng.integers(1, min(4, cfg.lanes) + 1))
            srcs = self.sources_for(q, 1)
            if srcs is None:
                return False
            row = int(self.rng.integers(0, cfg.lanes - count + 1))
            plans = []
            base = None
            for k in range(count):
                src = self.sources_for(q, 1)
                planned = self.read_to(src, self.rand_values(DType.I8, cfg.lanes), DType.I8,
                                       q, cycle, None if base is None else base + k)
                if planned is None or (base is not None and any(
                        c in p[1] for p in plans for c in planned[1][1])):
                    return False
                if any(src[0] == p[0][0][0] for p in plans):
                    return False
                if base is None:
                    base = planned[0] & 31
                    if base + count > cfg.streams_per_direction:
                        return False
                plans.append(planned[1])
            for p in plans:
                self.commit_reads(p)
            d = plans[0][2]
            self.b.place(q, cycle, Instruction(Opcode.LW, addr=row, a=stream_code(d, base),
                                               count=count))
            self.shadow_loaded[plane] = True
            return True
        if choice < 0.55 or not self.weights_installed[plane]:
            self.b.place(q, cycle, Instruction(Opcode.IW))
            self.weights_installed[plane] = True
            return True
        landed = [e for (p, e), t in self.acc_written.items() if p == plane and t <= cycle]
        if landed and choice > 0.75:
            entry = landed[int(self.rng.integers(0, len(landed)))]
        else:
            entry = int(self.rng.integers(0, cfg.mxm_acc_depth))
        lands = self.acc_written.get((plane, entry))
        if lands is not None and choice > 0.75 and cycle >= lands:
            code = self.write_from(q, cycle, Opcode.ACC, 4, f"t{n}")
            if code is None:
                return False
            self.b.place(q, cycle, Instruction(Opcode.ACC, dst=code, addr=entry))
            return True
        if lands is not None and cycle < lands:
            return False
        src = self.sources_for(q, 1)
        if src is None:
            return False
        planned = self.read_to(src, self.rand_values(DType.I8, cfg.lanes), DType.I8, q, cycle)
        if planned is None:
            return False
        self.commit_reads(planned[1])
        acc = int(lands is not None and self.rng.random() < 0.5)
        self.b.place(q, cycle, Instruction(Opcode.ABC, addr=entry, a=planned[0],
                                           accumulate=acc))
        self.acc_written[(plane, entry)] = cycle + latency(Opcode.ABC, cfg)
        return True


def random_program(config: ChipConfig, seed: int, transactions: int = 20,
                   kinds: tuple[str, ...] = ("copy", "vxm", "sxm", "mxm")) -> Program:
    """A valid random program of about ``transactions`` timed transactions.

    Parameters
    ----------
    config : ChipConfig
        The chip.
    seed : int
        Seed of the generator; the same seed gives the same program.
    transactions : int
        How many transactions to try to place (some may not fit and are skipped).
    kinds : tuple of str
        Which transaction kinds to draw from: ``copy`` (MEM to MEM), ``vxm``, ``sxm``, ``mxm``.
    """
    g = _Generator(config, seed)
    unknown = set(kinds) - {"copy", "vxm", "sxm", "mxm"}
    if unknown:
        raise ValueError(f"unknown transaction kinds {sorted(unknown)}")
    makers = {"copy": g.t_copy, "vxm": g.t_vxm, "sxm": g.t_sxm, "mxm": g.t_mxm}
    # early enough that a READ from the far end of the chip can still arrive
    cycle = config.positions + 4
    placed = 0
    for n in range(transactions * 4):
        if placed >= transactions:
            break
        kind = kinds[int(g.rng.integers(0, len(kinds)))]
        if makers[kind](cycle, n):
            placed += 1
        cycle += int(g.rng.integers(0, 3))
    return Program(config_name=config.name, config_hash=config.config_hash, lanes=config.lanes,
                   queues=g.b.queues(), mem_init=g.mem_init, outputs=g.outputs, source={})
