"""Cycle-exact schedule of a tiled GEMM: every plane's MXM queue, the MEM reads that feed it,
the VXM requantisation and the output writes.

Each MXM plane runs one in-order queue, so its timetable is a fixed sequence::

    LW* (first tile) | IW  ABC x rows  LW* (next tile) | ... | IW  ABCO x rows (last K step) | ...

``ABC`` and ``ABCO`` walk the accumulator entries with ``REPEAT`` steps, and the ``LW`` of the
next tile goes into the shadow buffer while the installed tile computes, so the plane spends
one cycle per ``LW`` chunk and one per ``IW`` on weights and one per ``ABC`` on useful work.
The last K step's ``ABCO`` puts each row's finished sum on the streams, so no cycle goes to
reading the accumulators out (``fused=False`` issues ``ABC`` and one ``ACC`` per row instead,
as chips without ``ABCO`` would).

Every instruction of the sequence is placed as early as possible (:meth:`GemmScheduler.run`),
together with everything it needs, all-or-nothing (a :class:`firmware.lower.resources.Txn`):

- ``LW``/``ABC``: one ``READ`` per row/vector from the slice holding it, timed to arrive at the
  plane in the instruction's issue cycle;
- ``ABCO`` (or ``ACC``): the 4-stream int32 result travels to the VXM, where a ``REQ``
  multiplies it by the per-channel multiplier (an int32 group that must be at the VXM in the
  same cycle) and shifts it; the result travels to the writer slices, which ``WRITE`` it. The
  multiplier is either read from SRAM for every ``REQ`` (4 slices, or through an SXM on chips
  with fewer than 4 slices per side), or read twice per output block and kept alive by a second
  ALU that issues ``MOV`` every cycle: its 2-cycle latency makes two copies circulate in place
  on one group (with a deep VXM pipeline, one copy, and one read, per cycle of ``MOV``
  latency). One multiplier for all channels that fits 24 bits is ``REQ``'s immediate
  instead.

If anything collides, the instruction moves one cycle later. Planes are interleaved in time
order so that no plane claims resources far in the future ahead of another.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from firmware.program import MemInit
from firmware.schedule import ScheduleBuilder
from openlpu.config import ChipConfig
from openlpu.isa import DType, Instruction, Opcode, latency, stream_code

from .errors import LoweringError, SramCapacityError
from .resources import Reservations, Txn
from .roles import PlaneRoles, RolePlan
from .tiling import Block, Tiling

__all__ = ["GemmScheduler", "ScheduleStats", "SramAllocator", "plane_sequence"]

#: How long an instruction may wait for its resources before the lowering gives up.
MAX_WAIT = 20_000
#: How far before its first REQ the circulating multiplier may be seeded.
SEED_WINDOW = 24


class SramAllocator:
    """Words of each MEM slice, handed out bank by bank, and the initial SRAM contents.

    Inputs fill bank 0 first and outputs bank 1, so that a slice that both feeds a plane and
    catches results rarely reads and writes one bank in one cycle.
    """

    def __init__(self, config: ChipConfig, total_need: int):
        self.config = config
        self.next: dict[tuple[str, int], int] = {}
        self.inits: list[MemInit] = []
        self.words = 0
        self.total_need = total_need

    def alloc(self, slices: tuple[str, ...], words: int, what: str, bank: int = 0) -> int:
        """An address with ``words`` free words in one bank of every slice of ``slices``."""
        W = self.config.mem_words_per_bank  # noqa: N806
        for b in (bank, 1 - bank):
            off = max(self.next.get((s, b), 0) for s in slices)
            if off + words <= W:
                for s in slices:
                    self.next[(s, b)] = off + words
                self.words += words * len(slices)
                return b << self.config.offset_bits | off
        cfg = self.config
        raise SramCapacityError(
            f"MEM slice(s) {'+'.join(slices)} are full: {what} needs {words} more word(s) "
            f"({words * cfg.lanes} bytes) in one bank; a slice has 2 banks of {W} words. The "
            f"GEMM needs {self.total_need} bytes of SRAM in all ({cfg.sram_bytes} on config "
            f"{cfg.name!r}), but not evenly: use fewer rows per block or a bigger preset",
            words * cfg.lanes, 2 * W * cfg.lanes)

    def put(self, slice_name: str, data: np.ndarray, what: str, bank: int = 0) -> int:
        """Store ``data`` (``[words, lanes]`` bytes) in ``slice_name``; returns its address."""
        addr = self.alloc((slice_name,), data.shape[0], what, bank)
        self.inits.append(MemInit(slice_name, addr, np.ascontiguousarray(data, np.uint8)))
        return addr


@dataclass
class ScheduleStats:
    """What the schedule did: the MXM's busy span and instruction counts (``abc`` counts
    ``ABCO`` too; ``last_acc`` is the last ``ACC`` or ``ABCO``, the last that emits a result)."""

    first_abc: int
    last_abc: int
    last_acc: int
    abc: int
    lw: int
    acc: int


@dataclass
class _Ring:
    """A multiplier kept alive on ``group`` at the VXM from ``start`` to ``alive_until``."""

    group: int
    alu: str
    nt: int
    start: int
    alive_until: int


def plane_sequence(steps: list[tuple[object, int]], loads, rows, kt_count,
                   fused: bool = True) -> Iterator[tuple]:
    """One MXM plane's queue, in order (see the module docstring): for each ``(block, kt)``
    of ``steps`` an ``IW``, one ``ABC`` per row and the ``LW``\\ s of the next step
    (``loads(block, kt)`` yields them; the first step's come first). A block's last K step
    (``kt_count`` is an int, or a function of the block) issues ``ABCO`` instead of ``ABC``,
    which puts each row's result on the streams; with ``fused=False`` it issues ``ABC`` and
    then one ``ACC`` per row. Ops are tuples ``("LW", ...)``, ``("IW", block)``, ``("ABC",
    block, row, kt)``, ``("ABCO", block, row, kt)``, ``("ACC", block, row)``; ``rows(block)``
    is the block's row count."""
    if not steps:
        return
    last = kt_count if callable(kt_count) else (lambda _: kt_count)
    yield from loads(*steps[0])
    for i, (block, kt) in enumerate(steps):
        out = kt == last(block) - 1
        yield ("IW", block)
        for row in range(rows(block)):
            yield ("ABCO" if out and fused else "ABC", block, row, kt)
        if i + 1 < len(steps):
            yield from loads(*steps[i + 1])
        if out and not fused:
            for row in range(rows(block)):
                yield ("ACC", block, row)


def _top_down(width: int, streams: int) -> list[int]:
    """Aligned group bases, highest first (feeds take the low streams)."""
    return list(range(streams - width, -1, -width))


class GemmScheduler:
    """Places a tiled GEMM on the chip (see the module docstring).

    Parameters
    ----------
    config : ChipConfig
        The chip.
    tiling : Tiling
        How the GEMM is cut.
    roles : RolePlan
        Which slices, streams and ALUs serve which plane.
    x, w : np.ndarray
        ``int8 [M, Kp]`` and ``int8 [Kp, Np]``, zero padded.
    mult : np.ndarray
        ``int32 [Np]`` multipliers (padding 0).
    shift : int
        ``REQ`` shift.
    out_dtype : DType
        ``REQ`` result type.
    sram_need : int
        Bytes the placement needs in total (for error messages).
    fused : bool
        Emit results with the last K step's ``ABCO`` (default) or with ``ACC``.
    """

    def __init__(self, config: ChipConfig, tiling: Tiling, roles: RolePlan, x: np.ndarray,
                 w: np.ndarray, mult: np.ndarray, shift: int, out_dtype: DType,
                 sram_need: int, fused: bool = True):
        self.config = config
        self.fused = fused
        self.tiling = tiling
        self.roles = roles
        self.x, self.w, self.mult = x, w, mult
        self.shift = shift
        self.out_dtype = out_dtype
        self.builder = ScheduleBuilder(config)
        self.res = Reservations(self.builder)
        self.sram = SramAllocator(config, sram_need)
        self.pos = {s.name: s.position for s in config.slices}
        self.v = self.pos["vxm"]
        self.S = config.streams_per_direction
        self.lat_abc = latency(Opcode.ABC, config)
        self.lat_shift = latency(Opcode.SHIFT, config)
        self.lat_req = latency(Opcode.REQ, config)
        self.lat_mov = latency(Opcode.MOV, config)
        self.plane_roles = {r.plane: r for r in roles.planes}
        self.x_addr: dict[tuple[int, int, int, int], int] = {}
        self.w_addr: dict[tuple[int, int, int, int], int] = {}
        self.out_addr: dict[int, int] = {}
        self.mult_addr: dict[tuple[str, int, int], int] = {}
        self.abc_cycle: dict[tuple[int, int], int] = {}
        self.rings: dict[int, _Ring] = {}
        self.sticky: dict[tuple[int, str], object] = {}
        self.stats = ScheduleStats(-1, -1, -1, 0, 0, 0)
        # One multiplier for every channel that fits REQ's 24-bit immediate needs no stream:
        # padding channels may take it too, their lanes are never read.
        real = mult[:tiling.N]
        lo, hi = -(1 << 23), (1 << 23) - 1
        self.mult_imm = (int(real[0]) if (real == real[0]).all() and lo <= real[0] <= hi
                         else None)
        self._routes = self._mult_routes() if self.mult_imm is None else []

    # --- data placement ----------------------------------------------------------------------

    def place_data(self) -> None:
        """Put every plane's x rows and weight rows in its slices, and reserve output words."""
        t, L = self.tiling, self.config.lanes  # noqa: N806
        for r in self.roles.planes:
            blocks = t.plane_blocks(r.plane)
            nx, c = len(r.x_slices), len(r.feeds)
            for mb in dict.fromkeys(b.mb for b in blocks):
                row0, rows = t.row_blocks[mb]
                for kt in range(t.KT):
                    for xi, s in enumerate(r.x_slices):
                        idx = np.arange(xi, rows, nx)
                        if len(idx):
                            data = self.x[row0 + idx, kt * L:(kt + 1) * L].view(np.uint8)
                            self.x_addr[(r.plane, mb, kt, xi)] = self.sram.put(
                                s, data, f"x rows of plane {r.plane}")
            for nt in dict.fromkeys(b.nt for b in blocks):
                for kt in range(t.KT):
                    valid = t.nt_rows(nt)
                    for j, s in enumerate(r.feeds):
                        rows = np.arange(j, valid, c)
                        if len(rows):
                            # LW row i holds the weights of output channel i: column i of w
                            data = self.w[kt * L:(kt + 1) * L, nt * L + rows].T.view(np.uint8)
                            self.w_addr[(r.plane, kt, nt, j)] = self.sram.put(
                                s, data, f"weight rows of plane {r.plane}")
            for b in blocks:
                self.out_addr[b.index] = self.sram.alloc(r.writers, b.rows,
                                                         f"outputs of plane {r.plane}", bank=1)

    def _mult_word(self, slice_name: str, nt: int, byte: int) -> int:
        key = (slice_name, nt, byte)
        addr = self.mult_addr.get(key)
        if addr is None:
            L = self.config.lanes  # noqa: N806
            v = self.mult[nt * L:(nt + 1) * L].astype("<i4").view(np.uint8).reshape(L, 4)
            addr = self.sram.put(slice_name, v[:, byte].reshape(1, L),
                                 "requantisation multipliers")
            self.mult_addr[key] = addr
        return addr

    # --- stream helpers ----------------------------------------------------------------------

    def _read(self, txn: Txn, slice_name: str, addr: int, direction: int, stream: int,
              dest: int, arrive: int) -> bool:
        """READ ``addr`` of ``slice_name`` so it is on ``stream`` at position ``dest`` in
        cycle ``arrive``."""
        p = self.pos[slice_name]
        issue = arrive - 2 - abs(p - dest)
        if issue < 0:
            return False
        return (txn.slot(slice_name, issue, Instruction(
                    Opcode.READ, dst=stream_code(direction, stream), addr=addr))
                and txn.path(direction, stream, p, issue + 2, dest)
                and txn.bank(slice_name, issue, addr >> self.config.offset_bits, "r"))

    def _prefer(self, plane: int, kind: str, options: list) -> list:
        """``options`` with the one that worked last time for this plane first (repeating
        the same choice makes REPEAT-compressible code)."""
        last = self.sticky.get((plane, kind))
        if last in options:
            return [last] + [o for o in options if o != last]
        return options

    # --- the requantisation multiplier ------------------------------------------------------

    def _mult_routes(self) -> list[tuple]:
        """Ways to bring an int32 multiplier group to the VXM, as
        ``("direct", slices, direction, base)`` or
        ``("relay", sxm, slices, in_direction, in_base, out_direction, out_base)``."""
        routes = []
        for slices in self.roles.mult_sources:
            d = 0 if self.pos[slices[0]] < self.v else 1
            for base in _top_down(4, self.S):
                routes.append(("direct", slices, d, base))
        for sxm, slices in self.roles.relays:
            x = self.pos[sxm]
            d_in = 0 if all(self.pos[s] < x for s in slices) else 1
            d_out = 0 if x < self.v else 1
            for a in _top_down(4, self.S):
                for g in _top_down(4, self.S):
                    routes.append(("relay", sxm, slices, d_in, a, d_out, g))
        if not routes:
            sxm = "an SXM with 4 slices upstream" if self.config.sxm else "an SXM (sxm = false)"
            raise LoweringError(
                f"config {self.config.name!r}: no way to bring per-channel int32 multipliers "
                f"to the VXM (neither 4 MEM slices on one side nor {sxm}); only one "
                f"multiplier for all channels, within 24 bits (REQ's immediate), can be used "
                f"here")
        return routes

    def _deliver(self, txn: Txn, route: tuple, at: int, nt: int) -> int | None:
        """Claim ``route`` so the multiplier of tile ``nt`` is at the VXM in cycle ``at``;
        returns the group's stream code."""
        v = self.v
        if route[0] == "direct":
            _, slices, d, base = route
            for k, s in enumerate(slices):
                if not self._read(txn, s, self._mult_word(s, nt, k), d, base + k, v, at):
                    return None
            return stream_code(d, base)
        _, sxm, slices, d_in, a, d_out, g = route
        x = self.pos[sxm]
        ts = at - self.lat_shift - abs(x - v)
        shift = Instruction(Opcode.SHIFT, dtype=DType.I32.value, stype=DType.I32.value,
                            dst=stream_code(d_out, g), a=stream_code(d_in, a), imm=0)
        if not txn.slot(sxm, ts, shift):
            return None
        for k in range(4):
            if not txn.path(d_out, g + k, x, ts + self.lat_shift, v):
                return None
        for k, s in enumerate(slices):
            if not self._read(txn, s, self._mult_word(s, nt, k), d_in, a + k, x, ts):
                return None
        return stream_code(d_out, g)

    def _extend_ring(self, txn: Txn, ring: _Ring, until: int) -> bool:
        """MOVs that keep ``ring`` alive at the VXM through cycle ``until``."""
        d, base = ring.group >> 5, ring.group & 31
        mov = Instruction(Opcode.MOV, dtype=DType.I32.value, stype=DType.I32.value,
                          dst=ring.group, a=ring.group)
        # a MOV issued in t reads the copy present in t and makes it present again in t + lat
        lat = self.lat_mov
        for t in range(ring.alive_until + 1 - lat, until + 1 - lat):
            if not txn.slot(ring.alu, t, mov):
                return False
            for k in range(4):
                if not txn.path(d, base + k, self.v, t + lat, self.v):
                    return False
        return True

    def _supply(self, txn: Txn, plane: int, R: int, nt: int,  # noqa: N803
                req_alu: str) -> tuple[int, _Ring | None] | None:
        """The multiplier of tile ``nt`` at the VXM in cycle ``R``: ``(group, new ring
        state)``, or ``None``."""
        if not self.roles.use_ring:
            for route in self._prefer(plane, "route", self._routes):
                m = txn.mark()
                g = self._deliver(txn, route, R, nt)
                if g is not None:
                    self.sticky[(plane, "route")] = route
                    return g, None
                txn.rollback(m)
            return None
        ring = self.rings.get(plane)
        if ring is not None and ring.nt == nt and ring.alu != req_alu and R >= ring.start:
            if R <= ring.alive_until:
                return ring.group, None
            m = txn.mark()
            if self._extend_ring(txn, ring, R):
                return ring.group, _Ring(ring.group, ring.alu, nt, ring.start, R)
            txn.rollback(m)
        alus = [a for a in self.plane_roles[plane].alus if a != req_alu]
        for alu in self._prefer(plane, "ring_alu", alus):
            for route in self._prefer(plane, "route", self._routes):
                for s0 in range(R, max(R - SEED_WINDOW, 0) - 1, -1):
                    m = txn.mark()
                    # one copy per cycle of MOV latency circulates
                    last = s0 + self.lat_mov - 1
                    g0 = self._deliver(txn, route, s0, nt)
                    if g0 is not None and all(self._deliver(txn, route, s, nt) is not None
                                              for s in range(s0 + 1, last + 1)):
                        ring = _Ring(g0, alu, nt, s0, last)
                        if self._extend_ring(txn, ring, R):
                            self.sticky[(plane, "ring_alu")] = alu
                            self.sticky[(plane, "route")] = route
                            return g0, _Ring(g0, alu, nt, s0, max(R, last))
                    txn.rollback(m)
        return None

    # --- one instruction of a plane, with everything it needs --------------------------------

    def _try_lw(self, txn: Txn, r: PlaneRoles, block: Block, kt: int, r0: int, cnt: int,
                t: int) -> bool:
        c = len(r.feeds)
        instr = Instruction(Opcode.LW, addr=r0, a=stream_code(r.feed_dir, r.feed_base),
                            count=cnt)
        if not txn.slot(r.queue, t, instr):
            return False
        for j in range(cnt):
            addr = self.w_addr[(r.plane, kt, block.nt, j)] + (r0 + j) // c
            if not self._read(txn, r.feeds[j], addr, r.feed_dir, r.feed_base + j, r.position,
                              t):
                return False
        return True

    def _read_x(self, txn: Txn, r: PlaneRoles, block: Block, row: int, kt: int,
                t: int) -> bool:
        """The READ that brings row ``row``'s K step ``kt`` to the plane in cycle ``t``."""
        nx = len(r.x_slices)
        addr = self.x_addr[(r.plane, block.mb, kt, row % nx)] + row // nx
        return self._read(txn, r.x_slices[row % nx], addr, r.feed_dir, r.feed_base,
                          r.position, t)

    def _try_abc(self, txn: Txn, r: PlaneRoles, block: Block, row: int, kt: int,
                 t: int) -> bool:
        instr = Instruction(Opcode.ABC, addr=row, a=stream_code(r.feed_dir, r.feed_base),
                            accumulate=int(kt > 0))
        return txn.slot(r.queue, t, instr) and self._read_x(txn, r, block, row, kt, t)

    def _try_acc(self, txn: Txn, r: PlaneRoles, block: Block, row: int,
                 t: int, kt: int | None = None) -> _Ring | None | bool:
        """ACC (or, given ``kt``, the last K step's ABCO), REQ and WRITEs of one output row;
        returns ``False`` or the new ring state."""
        v, p = self.v, r.plane
        nbytes = self.out_dtype.nbytes
        lat = 2 if kt is None else self.lat_abc
        R = t + lat + abs(v - r.position)  # noqa: N806 - the REQ's issue cycle
        d_out = 0 if self.pos[r.writers[0]] > v else 1
        for g in self._prefer(p, "acc", _top_down(4, self.S)):
            m = txn.mark()
            if kt is None:
                acc = Instruction(Opcode.ACC, dst=stream_code(r.acc_dir, g), addr=row)
            else:
                acc = Instruction(Opcode.ABCO, dst=stream_code(r.acc_dir, g), addr=row,
                                  a=stream_code(r.feed_dir, r.feed_base),
                                  accumulate=int(kt > 0))
            if not txn.slot(r.queue, t, acc) or (
                    kt is not None and not self._read_x(txn, r, block, row, kt, t)):
                txn.rollback(m)
                return False
            if not all(txn.path(r.acc_dir, g + k, r.position, t + lat, v) for k in range(4)):
                txn.rollback(m)
                continue
            for alu in self._prefer(p, "alu", list(r.alus)):
                if not txn.free(alu, R):
                    continue
                m2 = txn.mark()
                if self.mult_imm is not None:
                    operand, ring = {"bimm": 1, "imm": self.mult_imm}, None
                else:
                    supplied = self._supply(txn, p, R, block.nt, alu)
                    if supplied is None:
                        txn.rollback(m2)
                        continue
                    operand, ring = {"b": supplied[0]}, supplied[1]
                for o in self._prefer(p, "out", _top_down(nbytes, self.S)):
                    m3 = txn.mark()
                    req = Instruction(Opcode.REQ, dtype=self.out_dtype.value,
                                      stype=DType.I32.value, dst=stream_code(d_out, o),
                                      a=stream_code(r.acc_dir, g), c=self.shift, **operand)
                    ok = txn.slot(alu, R, req)
                    addr = self.out_addr[block.index] + row
                    for k, wslice in enumerate(r.writers):
                        pw = self.pos[wslice]
                        arrive = R + self.lat_req + abs(pw - v)
                        ok = ok and txn.path(d_out, o + k, v, R + self.lat_req, pw) \
                            and txn.slot(wslice, arrive, Instruction(
                                Opcode.WRITE, addr=addr, a=stream_code(d_out, o + k))) \
                            and txn.bank(wslice, arrive + 1,
                                         addr >> self.config.offset_bits, "w")
                    if ok:
                        self.sticky[(p, "acc")] = g
                        self.sticky[(p, "alu")] = alu
                        self.sticky[(p, "out")] = o
                        return ring if ring is not None else True
                    txn.rollback(m3)
                txn.rollback(m2)
            txn.rollback(m)
        return False

    # --- the plane sequences -------------------------------------------------------------------

    def _plane_ops(self, r: PlaneRoles):
        """The plane's queue in order (see the module docstring)."""
        t = self.tiling
        c = len(r.feeds)
        steps = [(b, kt) for b in t.plane_blocks(r.plane) for kt in range(t.KT)]

        def loads(block, kt):
            valid = t.nt_rows(block.nt)
            for r0 in range(0, valid, c):
                yield ("LW", block, kt, r0, min(c, valid - r0))

        yield from plane_sequence(steps, loads, lambda b: b.rows, t.KT, self.fused)

    def _earliest(self, plane: int, op: tuple, prev: int) -> int:
        if op[0] == "ACC":
            return max(prev + 1, self.abc_cycle[(op[1].index, op[2])] + self.lat_abc)
        return prev + 1

    def _place(self, r: PlaneRoles, op: tuple, earliest: int) -> int:
        kind = op[0]
        for t in range(earliest, earliest + MAX_WAIT):
            txn = self.res.txn()
            if kind == "IW":
                ok = txn.slot(r.queue, t, Instruction(Opcode.IW))
            elif kind == "LW":
                ok = self._try_lw(txn, r, op[1], op[2], op[3], op[4], t)
            elif kind == "ABC":
                ok = self._try_abc(txn, r, op[1], op[2], op[3], t)
            elif kind == "ABCO":
                ok = self._try_acc(txn, r, op[1], op[2], t, kt=op[3])
            else:
                ok = self._try_acc(txn, r, op[1], op[2], t)
            if ok is not False:
                txn.commit()
                if kind in ("ACC", "ABCO") and ok is not True:
                    self.rings[r.plane] = ok
                return t
        raise LoweringError(
            f"{kind} of MXM plane {r.plane} found no free cycle for its reads, streams and "
            f"writes within {MAX_WAIT} cycles of cycle {earliest} (config "
            f"{self.config.name!r}, variant {self.roles.variant})")

    def run(self) -> ScheduleStats:
        """Place every plane's sequence; returns the ABC statistics."""
        self.place_data()
        gens = {r.plane: self._plane_ops(r) for r in self.roles.planes}
        pending = {p: next(g) for p, g in gens.items()}
        prev = {p: -1 for p in gens}
        heap = [(self._earliest(p, op, -1), p) for p, op in pending.items()]
        heapq.heapify(heap)
        st = self.stats
        while heap:
            earliest, p = heapq.heappop(heap)
            r = self.plane_roles[p]
            op = pending[p]
            t = self._place(r, op, earliest)
            prev[p] = t
            if op[0] in ("ABC", "ABCO"):
                if op[3] == self.tiling.KT - 1:
                    self.abc_cycle[(op[1].index, op[2])] = t
                st.first_abc = t if st.first_abc < 0 else min(st.first_abc, t)
                st.last_abc = max(st.last_abc, t)
                st.abc += 1
            elif op[0] == "LW":
                st.lw += 1
            if op[0] in ("ACC", "ABCO"):
                st.acc += op[0] == "ACC"
                st.last_acc = max(st.last_acc, t)
            nxt = next(gens[p], None)
            if nxt is not None:
                pending[p] = nxt
                heapq.heappush(heap, (self._earliest(p, nxt, t), p))
        return st
