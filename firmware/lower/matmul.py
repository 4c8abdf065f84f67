"""Matmuls whose operands are already in SRAM: weight rows and input vectors are SRAM words.

The generalisation of :mod:`firmware.lower.scheduler` for a layer: a weight row may be any
int8 word (a constant weight row, a cached key, a row of ``V.T``, a row of activations) and
the int32 sums go straight from the last K step's ``ABCO`` to the four MEM slices of the
output word (the layer's ``REQ`` is a separate element-wise op). A :class:`MxmBlock` is one
output block: ``rows`` input vectors times one weight tile per K step; blocks are dealt out to
the MXM planes and each plane runs the in-order sequence of :mod:`firmware.lower.scheduler`
(:func:`~firmware.lower.scheduler.plane_sequence`)::

    LW* (first tile) | IW  ABC x rows  LW* (next tile) | ... | IW  ABCO x rows (last K step)

Weight rows are loaded in chunks of rows that sit in different slices (one ``LW`` of
``count`` rows); rows given as ``None`` are not loaded (their output lanes are padding).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from openlpu.isa import Instruction, Opcode, latency, stream_code

from .alloc import SramPlan
from .elementwise import Word
from .placer import Placer
from .resources import Txn
from .scheduler import plane_sequence

__all__ = ["LW_MIN_SPLIT", "MxmBlock", "run_blocks"]

#: A weight-row chunk longer than this that cannot be loaded in a cycle loses rows until it
#: fits (see ``run_blocks``); shorter chunks wait for a cycle where they fit whole.
LW_MIN_SPLIT = 2


@dataclass
class MxmBlock:
    """One output block: ``out[i] = sum_kt W_kt @ x[i][kt]`` for each of its rows.

    ``weights[kt][j]`` is the word of weight row ``j`` (output lane ``j``) of K step ``kt``,
    or ``None``; ``x[i][kt]`` the input word of row ``i``; ``out[i]`` the ``(group,
    address)`` of its int32 output word. :func:`run_blocks` fills ``ready``.
    """

    weights: list[list[Word | None]]
    x: list[list[Word]]
    out: list[tuple[int, int]]
    ready: list[int] | None = None


def _chunks(plan: SramPlan, rows: list[Word | None], limit: int):
    """``(first row, words)`` runs of consecutive loaded rows in distinct slices."""
    run: list[Word] = []
    first = 0
    used: set[str] = set()
    for j, w in enumerate(rows + [None]):
        s = plan.groups[w.gid][0] if w is not None else None
        if run and (w is None or s in used or len(run) == limit):
            yield first, run
            run, used = [], set()
        if w is not None:
            if not run:
                first = j
            run.append(w)
            used.add(s)


class _Plane:
    def __init__(self, pl: Placer, plane: int):
        self.queue = f"mxm{plane}"
        self.position = pl.pos[self.queue]
        self.feed_dir = 1 if self.position < pl.v else 0
        self.acc_dir = 1 - self.feed_dir


def run_blocks(pl: Placer, plan: SramPlan, blocks: list[MxmBlock]) -> None:
    """Place every block (round-robin over the MXM planes); sets each block's ``ready``."""
    cfg = pl.config
    planes = [_Plane(pl, p) for p in range(cfg.mxm_planes)]
    lat_abc = latency(Opcode.ABC, cfg)
    limit = min(pl.streams, 63, cfg.lanes)
    seqs: dict[int, list] = {p: [] for p in range(len(planes))}
    for b, blk in enumerate(blocks):
        blk.ready = [0] * len(blk.out)
        steps = seqs[b % len(planes)]
        steps.extend((blk, kt) for kt in range(len(blk.weights)))

    def ops(p: int):
        def loads(blk, kt):
            for j0, words in _chunks(plan, blk.weights[kt], limit):
                yield ("LW", blk, j0, words)
        yield from plane_sequence(seqs[p], loads, lambda b: len(b.x),
                                  lambda b: len(b.weights))

    abc_at: dict[tuple[int, int], int] = {}

    def attempt_for(pln: _Plane, op):
        kind = op[0]

        def attempt(txn: Txn, t: int):
            if kind == "IW":
                return txn.slot(pln.queue, t, Instruction(Opcode.IW))
            if kind == "LW":
                _, _, j0, words = op
                # A chunk needs one free READ slot in every slice it reads and a free stream
                # per row on one diagonal; while other ops use the slices and streams that
                # rarely happens for a long chunk, so its longest first part that fits is
                # loaded now instead and the rest by the next LW: one more plane cycle instead
                # of many idle ones (halving instead left 2-row loads where 7 rows fit).
                n = len(words)
                while n:
                    for base in pl.bases(1, ("lw", pln.queue)):
                        if base + n > pl.streams:
                            continue
                        m = txn.mark()
                        instr = Instruction(Opcode.LW, addr=j0, count=n,
                                            a=stream_code(pln.feed_dir, base))
                        if txn.slot(pln.queue, t, instr) and all(
                                pl.read(txn, plan.groups[w.gid][0], w.addr, pln.feed_dir,
                                        base + k, pln.position, t, w.ready)
                                for k, w in enumerate(words[:n])):
                            pl.sticky[("lw", pln.queue)] = base
                            return n
                        txn.rollback(m)
                    n = n - 1 if n > LW_MIN_SPLIT else 0
                return None
            if kind in ("ABC", "ABCO"):
                _, blk, row, kt = op
                w = blk.x[row][kt]
                for base in pl.bases(1, ("abc", pln.queue)):
                    m = txn.mark()
                    if pl.read(txn, plan.groups[w.gid][0], w.addr, pln.feed_dir, base,
                               pln.position, t, w.ready):
                        a = stream_code(pln.feed_dir, base)
                        if kind == "ABC":
                            ok = txn.slot(pln.queue, t, Instruction(
                                Opcode.ABC, addr=row, accumulate=int(kt > 0), a=a))
                        else:
                            ok = emit(txn, t, blk, row, lat_abc, lambda dst, a=a: Instruction(
                                Opcode.ABCO, dst=dst, addr=row, accumulate=int(kt > 0), a=a))
                        if ok:
                            pl.sticky[("abc", pln.queue)] = base
                            return ok
                    txn.rollback(m)
                return None
            _, blk, row = op
            return emit(txn, t, blk, row, 2,
                        lambda dst: Instruction(Opcode.ACC, dst=dst, addr=row))

        def emit(txn: Txn, t: int, blk, row: int, lat: int, make):
            """Issue ``make(dst)`` in ``t`` and write its int32 result, present at the plane
            in ``t + lat``, to the row's output word; the cycle it is ready, or None."""
            gid, addr = blk.out[row]
            for base in pl.bases(4, ("acc", pln.queue)):
                m = txn.mark()
                if txn.slot(pln.queue, t, make(stream_code(pln.acc_dir, base))):
                    ready = pl.write_group(txn, plan.groups[gid], addr, pln.acc_dir, base,
                                           pln.position, t + lat)
                    if ready is not None:
                        pl.sticky[("acc", pln.queue)] = base
                        return ready
                txn.rollback(m)
            return None
        return attempt

    def blocked_for(pln: _Plane, op):
        """``blocked`` for :meth:`Placer.place` of ``attempt_for(pln, op)``: the plane's
        slot taken, or the ``READ`` of the op's first word impossible whatever the stream
        (its slot, or its bank written then: every try reads that word first); a failed
        attempt here leaves nothing behind."""
        first = (op[3][0] if op[0] == "LW" and op[3] else
                 op[1].x[op[2]][op[3]] if op[0] in ("ABC", "ABCO") else None)
        plane = pl.builder.timetable(pln.queue)
        if first is not None:
            src = plan.groups[first.gid][0]
            hops = 2 + abs(pl.pos[src] - pln.position)
            bank = first.addr >> cfg.offset_bits
            banks = pl.res.banks

        def blocked(t: int) -> bool:
            if t < pl.res.floor or t in plane:
                return True
            if first is None:
                return False
            issue = t - hops
            return (issue < first.ready or issue < 0 or issue < pl.res.floor
                    or not pl.builder.free_for(src, issue, Opcode.READ)
                    or banks.get((src, issue, "w")) == bank)
        return blocked

    def earliest(pln: _Plane, op, prev: int) -> int:
        if op[0] == "ACC":
            return max(prev + 1, abc_at[(id(op[1]), op[2])] + lat_abc)
        words = (op[3] if op[0] == "LW" else [op[1].x[op[2]][op[3]]]
                 if op[0] in ("ABC", "ABCO") else [])
        need = [w.ready + 2 + abs(pl.pos[plan.groups[w.gid][0]] - pln.position) for w in words]
        return max([prev + 1, *need])

    gens = {p: ops(p) for p in seqs}
    pending = {p: next(g, None) for p, g in gens.items()}
    heap = [(earliest(planes[p], op, pl.plane_last.get(planes[p].queue, -1)), p)
            for p, op in pending.items() if op is not None]
    heapq.heapify(heap)
    while heap:
        e, p = heapq.heappop(heap)
        pln, op = planes[p], pending[p]
        t, res = pl.place(e, attempt_for(pln, op), f"{op[0]} of MXM plane {p}",
                          blocked=blocked_for(pln, op))
        pl.plane_last[pln.queue] = t
        if op[0] == "ABC":
            abc_at[(id(op[1]), op[2])] = t
        elif op[0] in ("ACC", "ABCO"):
            op[1].ready[op[2]] = res
        elif op[0] == "LW" and res < len(op[3]):
            # a partial load: the rest of the chunk is the plane's next instruction
            nxt = ("LW", op[1], op[2] + res, op[3][res:])
            pending[p] = nxt
            heapq.heappush(heap, (earliest(pln, nxt, t), p))
            continue
        nxt = next(gens[p], None)
        if nxt is not None:
            pending[p] = nxt
            heapq.heappush(heap, (earliest(pln, nxt, t), p))
