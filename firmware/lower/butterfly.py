"""A lane reduction of one word as one rigid chain through the SXM and the VXM.

The step-by-step reduction (:meth:`firmware.lower.graph.LayerGraph.reduce`) writes every
rotated partial result to SRAM and reads it back for the next op. :func:`butterfly_chain`
sends each rotated value straight from the SXM to the VXM op that combines it, so that a step
costs the trip VXM -> SXM -> VXM and the two latencies only (and fewer SRAM accesses); the
step-by-step form remains the fallback for rows whose chain does not fit.
"""

from __future__ import annotations

from openlpu.isa import DType, Instruction, Opcode, latency, missing_feature, stream_code

from .alloc import SramPlan
from .elementwise import Word, _deliver, _permute_on, _sxm_for, _writer
from .placer import Placer
from .resources import Txn

__all__ = ["butterfly_chain"]


def butterfly_chain(pl: Placer, plan: SramPlan, opcode: Opcode, acc: Word,
                    maps: list[Word], outs: list[tuple[int, int]], spread: bool,
                    max_wait: int) -> int:
    """A whole lane reduction of one word as one rigid chain through the SXM and the VXM.

    ``PERMUTE`` by ``maps[0]`` feeds the first ``opcode.i32`` straight from the SXM; each op
    reads its other operand (the previous partial result) from SRAM, writes its result to
    ``outs[k]`` on the way to the SXM and is permuted by ``maps[k + 1]`` for the next op. The
    last op writes ``outs[-1]`` (or, with ``spread``, a last ``PERMUTE`` by ``maps[-1]``
    broadcasts lane 0 into ``outs[-1]``). The scratch words ``outs`` lie on the SXM's side.
    Returns the cycle the result is readable.

    Raises
    ------
    LoweringError
        No placement within ``max_wait`` cycles (the caller then goes step by step).
    """
    sxm = _sxm_for(pl, plan, acc.gid)
    x = pl.pos[sxm]
    to_sxm = pl.toward(pl.v, x)
    lat_op = latency(opcode, pl.config)
    steps = len(maps) - (1 if spread else 0)
    alus = [a for a in pl.alus if missing_feature(opcode, a, pl.config) is None]

    def to_vxm_finish(txn: Txn, d: int, o: int, present: int):
        if not all(txn.path(d, o + k, x, present, pl.v) for k in range(4)):
            return None
        return stream_code(d, o), present + abs(x - pl.v)

    def op_step(txn: Txn, k: int, prev: Word, code: int, r: int):
        """Op ``k`` at VXM cycle ``r``; returns ``(ready, next stream code, next cycle)`` or
        ``(ready,)`` for the last one."""
        a = _deliver(pl, plan, txn, prev, 0, r, 4, ("bfly", k))
        if a is None:
            return None
        last = k == steps - 1 and not spread
        group = plan.groups[outs[k][0]]
        d = pl.toward(pl.v, pl.pos[group[0]]) if last else to_sxm
        for alu in alus:
            for base in pl.bases(4, ("out", d)):
                m = txn.mark()
                instr = Instruction(opcode, dtype=DType.I32.value, stype=DType.I32.value,
                                    dst=stream_code(d, base), a=a, b=code)
                if not txn.slot(alu, r, instr):
                    txn.rollback(m)
                    break
                present = r + lat_op
                if last:
                    ready = pl.write_group(txn, group, outs[k][1], d, base, pl.v, present)
                    if ready is not None:
                        return (ready,)
                elif all(txn.path(d, base + i, pl.v, present, x) for i in range(4)):
                    ready = pl.write_group(txn, group, outs[k][1], d, base, pl.v, present,
                                           claim=False)
                    if ready is not None:
                        ts = present + abs(x - pl.v)
                        if k + 1 < steps:
                            got = _permute_on(pl, plan, txn, sxm, ts, d, base, 4, maps[k + 1],
                                              pl.v, to_vxm_finish)
                            if got is not None:
                                return ready, got[0], got[1]
                        else:
                            got = _permute_on(pl, plan, txn, sxm, ts, d, base, 4, maps[-1],
                                              *_writer(pl, plan, sxm, outs[-1]))
                            if got is not None:
                                return (got,)
                txn.rollback(m)
        return None

    def attempt(txn: Txn, ts: int):
        group = plan.groups[acc.gid]
        d_in = pl.toward(pl.pos[group[0]], x)
        if not (txn.free(sxm, ts) and pl.group_free(txn, group, x, ts, acc.ready)):
            return None
        for a in pl.bases(4, ("perm_a", sxm)):
            m = txn.mark()
            if pl.read_group(txn, group, acc.addr, d_in, a, x, ts, acc.ready):
                got = _permute_on(pl, plan, txn, sxm, ts, d_in, a, 4, maps[0], pl.v,
                                  to_vxm_finish)
                if got is not None:
                    code, r, prev = got[0], got[1], acc
                    for k in range(steps):
                        res = op_step(txn, k, prev, code, r)
                        if res is None:
                            return None
                        if len(res) == 1:
                            return res[0]
                        prev, code, r = Word(*outs[k], res[0]), res[1], res[2]
            txn.rollback(m)
        return None

    far = max(abs(pl.pos[s] - x) for s in plan.groups[acc.gid])
    _, ready = pl.place(acc.ready + 2 + far, attempt, f"{opcode.name} butterfly", max_wait)
    return ready
