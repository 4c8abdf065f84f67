"""Constrained-random valid programs, for regression of the golden model and the RTL.

:func:`random_program` builds a program of timed transactions over every slice type — MEM copies
(a slice's READ and WRITE of one cycle issue as one RDWR), VXM operations of every opcode and
type, SXM lane moves, MXM weight loads, matrix-vector products and accumulator reads — and
schedules them so that the result is a *valid* schedule: every stream value is consumed exactly
where and when it is present, no two producers write one stream register in one cycle, no value
is overwritten on its way, no bank is read and written in one cycle, and no accumulator is read
before its ABC lands. The same seed gives the same program, so a failing seed can be replayed.
"""

from __future__ import annotations

import numpy as np

from openlpu.config import ChipConfig
from openlpu.isa import (
    OPS,
    VXM_SPECIAL,
    DType,
    Instruction,
    Opcode,
    Unit,
    latency,
    missing_feature,
    stream_code,
)

from .program import MemInit, OutputRegion, Program
from .schedule import ScheduleBuilder

__all__ = ["KINDS", "directed_programs", "random_program"]

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
    def __init__(self, config: ChipConfig, seed: int, opcodes=None):
        self.opcodes = set(opcodes) if opcodes else None
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
        # a slice that only WRITEs in that cycle can READ too (the two issue as one RDWR)
        if min(issues) < 0 or not all(self.b.free_for(s, t, Opcode.READ)
                                      for s, t in zip(slices, issues, strict=True)):
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

    def write_from(self, unit: str, issue: int, op: Opcode, width: int, name: str,
                   split: bool = False):
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
            if not all(self.b.free_for(w, t, Opcode.WRITE)
                       for w, t in zip(writers, arrivals, strict=True)):
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
                if split:  # one int8 output per stream (TRANSPOSE)
                    self.outputs += [OutputRegion(f"{name}_{k}", (w,), addr, 1, "int8")
                                     for k, w in enumerate(writers)]
                else:
                    self.outputs.append(OutputRegion(name, tuple(writers), addr, 1,
                                                     _OUT_DTYPE[width]))
                return code
        return None

    def allowed(self, ops) -> list:
        """The opcodes of ``ops`` the filter lets through."""
        return [o for o in ops if self.opcodes is None or o in self.opcodes]

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
        # only opcodes some ALU of this config has the hardware for
        choices = self.allowed([s.opcode for s in OPS.values() if s.unit is Unit.VXM
                                and missing_feature(s.opcode, "vxm0", cfg) is None])
        if not choices:
            return False
        spec = OPS[choices[int(self.rng.integers(0, len(choices)))]]
        dt = DType(self.rng.choice([d.value for d in spec.dtypes]))
        op = spec.opcode
        stype = dt
        if op is Opcode.CVT:
            stype = DType(self.rng.integers(0, 3))
        if op is Opcode.REQ:
            stype = DType.I32
        alu = f"vxm{self.rng.integers(0, cfg.vxm_alus_per_lane)}"
        if op in VXM_SPECIAL:  # on one of the ALUs with the special-function unit
            specials = cfg.vxm_special_alus
            alu = "vxm0" if specials == 1 else f"vxm{self.rng.integers(0, specials)}"
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
        widened = []
        for name, t in operands:
            srcs = self.sources_for("vxm", t.nbytes)
            if srcs is None:
                # too few MEM slices on one side for a wide group (ice40): widen an int8
                # vector in this ALU first, so the group is born at the VXM position
                planned = self.widen_in_vxm(alu, cycle, t, used)
                if planned is None:
                    return False
                code, plan, cvt = planned
                fields[name] = code
                plans.append(plan)
                widened.append(cvt)
                taken.extend(plan[1])
                continue
            if used & set(srcs):
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
        if len(widened) > 1 or (widened and any(
                c in taken[:-len(widened[0][2])] for c in widened[0][2])):
            return False  # one widening per ALU slot, and no shared cells
        for p in plans:
            self.commit_reads(p)
        for cvt_cycle, cvt, cells in widened:
            self.b.place(alu, cvt_cycle, cvt)
            self.res.cells.update(cells)
        instr = Instruction(op, **fields)
        code = self.write_from("vxm", cycle, op, dt.nbytes, f"t{n}")
        if code is None and dt.nbytes > 1:
            code = self.narrow_in_vxm(alu, cycle, op, dt, n)
        if code is None:
            return True  # reads committed; result unobserved but the schedule stays valid
        self.b.place(alu, cycle, instr.replace(dst=code))
        return True

    def narrow_in_vxm(self, alu: str, cycle: int, op: Opcode, dt: DType, n: int):
        """Too few MEM slices downstream to write a wide result (ice40): CVT it to int8 in the
        same ALU when it lands and write that. Returns the wide result's group or None."""
        cfg = self.cfg
        t_cvt = cycle + latency(op, cfg)
        if self.b.busy(alu, t_cvt):
            return None
        v = self.pos("vxm")
        for d in (0, 1):
            for base in range(0, cfg.streams_per_direction - dt.nbytes + 1, dt.nbytes):
                cells = [(d, base + k, v, t_cvt) for k in range(dt.nbytes)]
                if not self.res.free(cells):
                    continue
                self.res.cells.update(cells)
                out = self.write_from("vxm", t_cvt, Opcode.CVT, 1, f"t{n}")
                if out is None:
                    self.res.cells.difference_update(cells)
                    return None
                code = stream_code(d, base)
                self.b.place(alu, t_cvt, Instruction(Opcode.CVT, dtype=DType.I8.value,
                                                     stype=dt.value, dst=out, a=code))
                return code
        return None

    def widen_in_vxm(self, alu: str, cycle: int, dtype: DType, used: set):
        """Plan ``CVT.dtype.i8`` on ``alu`` so its result group is present at the VXM in
        ``cycle``; returns (group code, read plan, (cvt cycle, CVT, cells)) or None."""
        cfg = self.cfg
        t_cvt = cycle - latency(Opcode.CVT, cfg)
        if t_cvt < 0 or self.b.busy(alu, t_cvt):
            return None
        srcs = self.sources_for("vxm", 1)
        if srcs is None or used & set(srcs):
            return None
        planned = self.read_to(srcs, self.rand_values(DType.I8, cfg.lanes), DType.I8, "vxm",
                               t_cvt)
        if planned is None:
            return None
        a_code, plan = planned
        v = self.pos("vxm")
        for d in (0, 1):
            starts = list(range(0, cfg.streams_per_direction - dtype.nbytes + 1, dtype.nbytes))
            self.rng.shuffle(starts)
            for base in starts:
                cells = [(d, base + k, v, cycle) for k in range(dtype.nbytes)]
                if self.res.free(cells) and not set(cells) & set(plan[1]):
                    code = stream_code(d, base)
                    cvt = Instruction(Opcode.CVT, dtype=dtype.value, stype=DType.I8.value,
                                      dst=code, a=a_code)
                    used |= set(srcs)
                    return code, plan, (t_cvt, cvt, cells)
        return None

    def t_copy(self, cycle: int, n: int) -> bool:
        src = self.mems[int(self.rng.integers(0, len(self.mems)))]
        dst = [m for m in self.mems if m != src]
        dst = dst[int(self.rng.integers(0, len(dst)))]
        return self.copy(src, dst, cycle, f"t{n}")

    def copy(self, src: str, dst: str, cycle: int, name: str) -> bool:
        """READ a fresh word of ``src`` and WRITE it into ``dst`` in ``cycle`` (joining a READ
        of ``dst`` in that cycle as an RDWR); output ``name``."""
        planned = self.read_to([src], self.rand_values(DType.I8, self.cfg.lanes), DType.I8,
                               dst, cycle)
        if planned is None or not self.b.free_for(dst, cycle, Opcode.WRITE):
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
        self.outputs.append(OutputRegion(name, (dst,), addr, 1, "int8"))
        return True

    def t_rdwr(self, cycle: int, n: int) -> bool:
        """RDWR: a slice READs a word for another slice and WRITEs one it receives, both
        issued in ``cycle`` (two copies through it, in and out)."""
        mid = self.mems[int(self.rng.integers(0, len(self.mems)))]
        others = [m for m in self.mems if m != mid]
        out, into = (others[int(i)] for i in self.rng.integers(0, len(others), 2))
        if self.b.busy(mid, cycle):
            return False
        if not self.copy(mid, out, self.b.arrival(mid, cycle, Opcode.READ, out), f"t{n}_out"):
            return False
        self.copy(into, mid, cycle, f"t{n}_in")  # the READ half stands alone if this fails
        return True

    def t_sxm(self, cycle: int, n: int) -> bool:
        cfg = self.cfg
        sxm = ["sxm_w", "sxm_e"][int(self.rng.integers(0, 2))]
        if self.b.busy(sxm, cycle):
            return False
        choices = self.allowed([Opcode.SHIFT, Opcode.PERMUTE, Opcode.DISTRIBUTE,
                                Opcode.TRANSPOSE])
        if not choices:
            return False
        op = choices[int(self.rng.integers(0, len(choices)))]
        if op is Opcode.TRANSPOSE:
            return self.t_transpose(sxm, cycle, n)
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
        acc = int(lands is not None and self.rng.random() < 0.5)
        if self.rng.random() < (1.0 if self.opcodes and Opcode.ABCO in self.opcodes else 0.35):
            # ABCO: the new accumulator value also goes to MEM, with no ACC
            code = self.write_from(q, cycle, Opcode.ABCO, 4, f"t{n}")
            if code is None:
                return False
            instr = Instruction(Opcode.ABCO, dst=code, addr=entry, a=planned[0], accumulate=acc)
        else:
            instr = Instruction(Opcode.ABC, addr=entry, a=planned[0], accumulate=acc)
        self.commit_reads(planned[1])
        self.b.place(q, cycle, instr)
        self.acc_written[(plane, entry)] = cycle + latency(Opcode.ABC, cfg)
        return True


def _t_transpose(self, sxm: str, cycle: int, n: int) -> bool:
    """TRANSPOSE: lanes_per_superlane streams from as many MEM slices upstream of the SXM."""
    lps = self.cfg.lanes_per_superlane
    srcs = self.sources_for(sxm, lps)
    if srcs is None:
        return False
    plans = []
    base = None
    for k, src in enumerate(srcs):
        planned = self.read_to([src], self.rand_values(DType.I8, self.cfg.lanes), DType.I8,
                               sxm, cycle, None if base is None else base + k)
        if planned is None:
            return False
        if base is None:
            base = planned[0] & 31
            if base % lps or base + lps > self.cfg.streams_per_direction:
                return False
        plans.append(planned[1])
    cells = [c for p in plans for c in p[1]]
    if len(cells) != len(set(cells)):
        return False
    code = self.write_from(sxm, cycle, Opcode.TRANSPOSE, lps, f"t{n}", split=True)
    if code is None:
        return False
    for p in plans:
        self.commit_reads(p)
    self.b.place(sxm, cycle, Instruction(Opcode.TRANSPOSE, dst=code,
                                         a=stream_code(plans[0][2], base)))
    return True


def _pick_region(self, cycle: int, access: int):
    """A random MEM slice free in ``cycle`` and 1..8 fresh words in a bank it may access in
    ``access``: ``(slice, words, bank, key, first offset)``, or None."""
    slice_name = self.mems[int(self.rng.integers(0, len(self.mems)))]
    if self.b.busy(slice_name, cycle):
        return None
    words = int(self.rng.integers(1, 9))
    bank = int(self.rng.integers(0, 2))
    if not self.res.bank_ok(slice_name, access, bank):
        return None
    key = (slice_name, bank)
    first = self.next_offset.get(key, 0)
    if first + words > self.cfg.mem_words_per_bank:
        return None
    return slice_name, words, bank, key, first


def _t_gather(self, cycle: int, n: int) -> bool:
    """GATHER from a table of fresh words in one slice, map from two slices upstream."""
    cfg = self.cfg
    region = _pick_region(self, cycle, cycle)
    if region is None:
        return False
    slice_name, words, bank, key, first = region
    srcs = self.sources_for(slice_name, 2)
    if srcs is None or slice_name in srcs:
        return False
    offsets = self.rng.integers(0, words, size=cfg.lanes)
    planned = self.read_to(srcs, offsets, DType.I16, slice_name, cycle)
    if planned is None:
        return False
    code = self.write_from(slice_name, cycle, Opcode.GATHER, 1, f"t{n}")
    if code is None:
        return False
    self.next_offset[key] = first + words
    base = (bank << cfg.offset_bits) + first
    table = self.rng.integers(0, 256, size=(words, cfg.lanes)).astype(np.uint8)
    self.mem_init.append(MemInit(slice_name, base, table))
    self.commit_reads(planned[1])
    self.res.banks[(slice_name, cycle)] = bank
    self.b.place(slice_name, cycle, Instruction(Opcode.GATHER, dst=code, addr=base,
                                                b=planned[0]))
    return True


def _t_scatter(self, cycle: int, n: int) -> bool:
    """SCATTER a vector into a region of fresh words; map and vector from upstream slices."""
    cfg = self.cfg
    region = _pick_region(self, cycle, cycle + 1)
    if region is None:
        return False
    slice_name, words, bank, key, first = region
    srcs = self.sources_for(slice_name, 3)
    if srcs is None or slice_name in srcs:
        return False
    mp = self.read_to(srcs[:2], self.rng.integers(0, words, size=cfg.lanes), DType.I16,
                      slice_name, cycle)
    if mp is None:
        return False
    vec = self.read_to(srcs[2:], self.rand_values(DType.I8, cfg.lanes), DType.I8, slice_name,
                       cycle)
    if vec is None or set(mp[1][1]) & set(vec[1][1]):
        return False
    self.next_offset[key] = first + words
    base = (bank << cfg.offset_bits) + first
    self.commit_reads(mp[1])
    self.commit_reads(vec[1])
    self.res.banks[(slice_name, cycle + 1)] = bank
    self.b.place(slice_name, cycle, Instruction(Opcode.SCATTER, addr=base, b=mp[0],
                                                a=vec[0]))
    self.outputs.append(OutputRegion(f"t{n}", (slice_name,), base, words, "int8"))
    return True


_Generator.t_transpose = _t_transpose
_Generator.t_gather = _t_gather
_Generator.t_scatter = _t_scatter

KINDS = ("copy", "rdwr", "vxm", "sxm", "mxm", "gather", "scatter")


def random_program(config: ChipConfig, seed: int, transactions: int = 20,
                   kinds: tuple[str, ...] = KINDS, opcodes=None) -> Program:
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
        Transaction kinds to draw from (:data:`KINDS`): ``copy`` (MEM READ to WRITE),
        ``rdwr`` (a slice's READ and WRITE in one cycle, one RDWR),
        ``vxm``, ``sxm``, ``mxm`` (LW, IW, ABC, ABCO, ACC), ``gather``, ``scatter``.
        ``sxm`` is left out on a chip without SXMs (``config.sxm`` false).
    opcodes : iterable of Opcode, optional
        Restrict VXM and SXM transactions to these opcodes (a directed program); with
        ``ABCO`` in it, every product of an ``mxm`` transaction is an ABCO.
    """
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown transaction kinds {sorted(unknown)}; known: {KINDS}")
    if not config.sxm:
        kinds = tuple(k for k in kinds if k != "sxm")
        if not kinds:
            raise ValueError(f"config {config.name!r} has no SXMs (sxm = false): no SXM "
                             "transactions can be placed")
    g = _Generator(config, seed, opcodes)
    makers = {"copy": g.t_copy, "rdwr": g.t_rdwr, "vxm": g.t_vxm, "sxm": g.t_sxm,
              "mxm": g.t_mxm, "gather": g.t_gather, "scatter": g.t_scatter}
    # early enough that a READ from the far end of the chip can still arrive
    cycle = config.positions + 4
    placed = 0
    # a transaction adds at most a few words (its instruction, a NOP before it) to a queue;
    # stop while every queue still fits the RTL's queue memory with its END
    room = config.queue_depth - 8
    for n in range(transactions * 6):
        if placed >= transactions:
            break
        if placed and max(map(len, g.b.queues().values()), default=0) > room:
            break
        kind = kinds[int(g.rng.integers(0, len(kinds)))]
        if makers[kind](cycle, n):
            placed += 1
        cycle += int(g.rng.integers(0, 3))
    return Program(config_name=config.name, config_hash=config.config_hash, lanes=config.lanes,
                   queues=g.b.queues(), mem_init=g.mem_init, outputs=g.outputs, source={})


def directed_programs(config: ChipConfig, seed: int = 0,
                      per_program: int = 6) -> dict[str, Program]:
    """One program per instruction of the ISA (each VXM opcode, each SXM opcode, the MEM
    instructions and the MXM sequence), built by the random generator restricted to it."""
    from openlpu.isa import OPS

    out = {}
    for spec in OPS.values():
        if spec.unit is Unit.VXM:
            if missing_feature(spec.opcode, "vxm0", config):
                continue  # the config leaves its hardware out (the ISA refuses it)
            out[spec.name] = random_program(config, seed, per_program, ("vxm",), {spec.opcode})
        elif spec.unit is Unit.SXM and config.sxm:
            out[spec.name] = random_program(config, seed, per_program, ("sxm",), {spec.opcode})
    out["READ_WRITE"] = random_program(config, seed, per_program, ("copy",))
    out["RDWR"] = random_program(config, seed, per_program, ("rdwr",))
    out["GATHER"] = random_program(config, seed, per_program, ("gather",))
    out["SCATTER"] = random_program(config, seed, per_program, ("scatter",))
    out["MXM"] = random_program(config, seed, 4 * per_program, ("mxm",))
    out["ABCO"] = random_program(config, seed, 4 * per_program, ("mxm",), {Opcode.ABCO})
    return out
