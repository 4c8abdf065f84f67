"""A lane reduction of one word as one rigid chain through the SXM and the VXM.

The step-by-step reduction (:meth:`firmware.lower.graph.LayerGraph.reduce`) writes every
rotated partial result to SRAM and reads it back for the next op. :func:`butterfly_chain`
sends each rotated value straight from the SXM to the VXM op that combines it, so that a step
costs the trip VXM -> SXM -> VXM and the two latencies only (and fewer SRAM accesses); the
step-by-step form remains the fallback for rows whose chain does not fit.
:func:`mirrored_chain` goes further where the chip has two ALUs for the op: each partial
result is computed twice, and the copy that is not rotated makes the round trip through the
opposite SXM, so that it meets its rotation at the VXM and no partial result is written to or
read from SRAM (the MEM slices, which issue one instruction per cycle, are what limits the
chain form).
"""

from __future__ import annotations

from collections.abc import Callable

from openlpu.isa import DType, Instruction, Opcode, latency, missing_feature, stream_code

from .alloc import SramPlan
from .elementwise import Word, _deliver, _permute_on, _sxm_for, _writer
from .placer import Placer
from .resources import Txn

__all__ = ["MIRROR_WAIT", "butterfly_chain", "mirrored_chain"]

#: How far past its earliest cycle a mirrored chain may be pushed before the reduction falls
#: back to the other forms. Many rows reduced at once queue for the two SXMs (each step takes
#: a slot on both); waiting for one is still cheaper than the fallbacks' SRAM round trips
#: (Llama h128 at 32 tokens on sim: 12,314 cycles with 200, 10,892 with 1,000).
MIRROR_WAIT = 1000


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
        """Op ``k`` at VXM cycle ``r``; returns the next op's ``(prev, stream code, cycle)``
        (``prev``: this op's result in SRAM) or ``(ready,)`` for the last one."""
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
                                return Word(*outs[k], ready), got[0], got[1]
                        else:
                            got = _permute_on(pl, plan, txn, sxm, ts, d, base, 4, maps[-1],
                                              *_writer(pl, plan, sxm, outs[-1]))
                            if got is not None:
                                return (got,)
                txn.rollback(m)
        return None

    def attempt(txn: Txn, ts: int):
        got = _rotate_first(pl, plan, txn, sxm, acc, maps[0], ts, to_vxm_finish)
        if got is None:
            return None
        return _run_steps(txn, steps, op_step, (acc, got[0], got[1]))

    far = max(abs(pl.pos[s] - x) for s in plan.groups[acc.gid])
    _, ready = pl.place(acc.ready + 2 + far, attempt, f"{opcode.name} butterfly", max_wait,
                        _rotate_blocked(pl, plan, sxm, acc))
    return ready


def mirrored_chain(pl: Placer, plan: SramPlan, opcode: Opcode, acc: Word,
                   lane_maps: Callable[[], list[Word]], out: tuple[int, int], spread: bool,
                   max_wait: int) -> int | None:
    """A lane reduction of one word whose partial results never touch SRAM.

    As :func:`butterfly_chain`, except that each op (but the last) is issued twice in the same
    cycle, on two ALUs: one copy goes to the SXM on ``acc``'s side and is permuted, the other
    to the opposite SXM, which sends it straight back (``SHIFT`` by 0 lanes). Both SXMs are
    equally far from the VXM and ``SHIFT`` takes as long as ``PERMUTE``, so the partial result
    and its rotation reach the VXM together as the next op's operands: a step reads its lane
    map and nothing else from SRAM, where the chain of :func:`butterfly_chain` writes and
    reads back every partial result. The last op writes ``out`` (with ``spread``, its result
    is first permuted by ``maps[-1]``). ``lane_maps()`` gives the map words (as ``maps`` of
    :func:`butterfly_chain`); it is called only when the chip can mirror. Returns the cycle the
    result is readable, or ``None`` when it cannot (fewer than two ALUs with ``opcode``, or
    SXMs at unequal distances).

    Raises
    ------
    LoweringError
        No placement within ``max_wait`` cycles.
    """
    cfg = pl.config
    sxm = _sxm_for(pl, plan, acc.gid)
    other = "sxm_e" if sxm == "sxm_w" else "sxm_w"
    x, y = pl.pos[sxm], pl.pos[other]
    dist = abs(x - pl.v)
    alus = [a for a in pl.alus if missing_feature(opcode, a, cfg) is None]
    lat_sxm = latency(Opcode.SHIFT, cfg)
    if len(alus) < 2 or abs(y - pl.v) != dist or latency(Opcode.PERMUTE, cfg) != lat_sxm:
        return None
    maps = lane_maps()
    to_x, to_y = pl.toward(pl.v, x), pl.toward(pl.v, y)
    lat_op = latency(opcode, cfg)
    steps = len(maps) - (1 if spread else 0)
    i32 = DType.I32.value

    def op(dst: int, a: int, b: int) -> Instruction:
        return Instruction(opcode, dtype=i32, stype=i32, dst=dst, a=a, b=b)

    def back(txn: Txn, src: int, d: int, o: int, present: int):
        """Claim the way from the SXM at ``src`` to the VXM: ``(stream code, arrival)``."""
        if not all(txn.path(d, o + k, src, present, pl.v) for k in range(4)):
            return None
        return stream_code(d, o), present + dist

    def go(txn: Txn, d: int, base: int, present: int, dest: int) -> bool:
        return all(txn.path(d, base + k, pl.v, present, dest) for k in range(4))

    def shift_back(txn: Txn, ts: int, base: int):
        """``SHIFT`` by 0 at the opposite SXM in cycle ``ts`` of streams ``base ..``."""
        if not txn.free(other, ts):
            return None
        d_out = pl.toward(y, pl.v)
        for o in pl.bases(4, ("shift_o", other)):
            m = txn.mark()
            instr = Instruction(Opcode.SHIFT, dtype=i32, stype=i32, dst=stream_code(d_out, o),
                                a=stream_code(to_y, base), imm=0)
            if txn.slot(other, ts, instr):
                got = back(txn, y, d_out, o, ts + lat_sxm)
                if got is not None:
                    return got
            txn.rollback(m)
        return None

    def last_step(txn: Txn, a: int, b: int, r: int):
        group = plan.groups[out[0]]
        d = pl.toward(pl.v, pl.pos[group[0]])
        for alu in alus:
            for base in pl.bases(4, ("out", d)):
                m = txn.mark()
                if not txn.slot(alu, r, op(stream_code(d, base), a, b)):
                    txn.rollback(m)
                    break
                ready = pl.write_group(txn, group, out[1], d, base, pl.v, r + lat_op)
                if ready is not None:
                    return ready
                txn.rollback(m)
        return None

    def op_step(txn: Txn, k: int, a: int, b: int, r: int):
        """Op ``k`` at VXM cycle ``r`` on the operands on streams ``a`` and ``b``: ``(ready,)``
        when it is the last, else the next op's ``(a, b, cycle)``."""
        if k == steps - 1 and not spread:
            ready = last_step(txn, a, b, r)
            return None if ready is None else (ready,)
        present = r + lat_op
        ts = present + dist
        for alu in alus:
            for base in pl.bases(4, ("out", to_x)):
                m = txn.mark()
                if not txn.slot(alu, r, op(stream_code(to_x, base), a, b)):
                    txn.rollback(m)
                    break
                if not go(txn, to_x, base, present, x):
                    txn.rollback(m)
                    continue
                if k == steps - 1:  # spread: the last result is broadcast into ``out``
                    got = _permute_on(pl, plan, txn, sxm, ts, to_x, base, 4, maps[-1],
                                      *_writer(pl, plan, sxm, out))
                    if got is not None:
                        return (got,)
                    txn.rollback(m)
                    continue
                got = _permute_on(pl, plan, txn, sxm, ts, to_x, base, 4, maps[k + 1], pl.v,
                                  lambda t, d, o, p: back(t, x, d, o, p))
                if got is None:
                    txn.rollback(m)
                    continue
                rotated, r2 = got
                for alu2 in alus:
                    if alu2 == alu:
                        continue
                    for base2 in pl.bases(4, ("mirror", to_y)):
                        m2 = txn.mark()
                        if not txn.slot(alu2, r, op(stream_code(to_y, base2), a, b)):
                            txn.rollback(m2)
                            break
                        if go(txn, to_y, base2, present, y):
                            mirrored = shift_back(txn, ts, base2)
                            if mirrored is not None and mirrored[1] == r2:
                                return mirrored[0], rotated, r2
                        txn.rollback(m2)
                txn.rollback(m)
        return None

    def attempt(txn: Txn, ts: int):
        got = _rotate_first(pl, plan, txn, sxm, acc, maps[0], ts,
                            lambda t, d, o, p: back(t, x, d, o, p))
        if got is None:
            return None
        b, r = got
        a = _deliver(pl, plan, txn, acc, 0, r, 4, ("bfly", 0))
        if a is None:
            return None
        return _run_steps(txn, steps, op_step, (a, b, r))

    far = max(abs(pl.pos[s] - x) for s in plan.groups[acc.gid])
    _, ready = pl.place(acc.ready + 2 + far, attempt, f"{opcode.name} mirrored butterfly",
                        max_wait, _rotate_blocked(pl, plan, sxm, acc))
    return ready


def _rotate_first(pl: Placer, plan: SramPlan, txn: Txn, sxm: str, acc: Word, lane_map: Word,
                  ts: int, finish):
    """Read ``acc`` from SRAM so that it reaches ``sxm`` in cycle ``ts`` and ``PERMUTE`` it
    there by ``lane_map`` towards the VXM (``finish`` claims the way, see
    :func:`~firmware.lower.elementwise._permute_on`); what ``finish`` returns, or ``None``."""
    x = pl.pos[sxm]
    group = plan.groups[acc.gid]
    d_in = pl.toward(pl.pos[group[0]], x)
    if not (txn.free(sxm, ts) and pl.group_free(txn, group, x, ts, acc.ready)):
        return None
    for base in pl.bases(4, ("perm_a", sxm)):
        m = txn.mark()
        if pl.read_group(txn, group, acc.addr, d_in, base, x, ts, acc.ready):
            got = _permute_on(pl, plan, txn, sxm, ts, d_in, base, 4, lane_map, pl.v, finish)
            if got is not None:
                return got
        txn.rollback(m)
    return None


def _rotate_blocked(pl: Placer, plan: SramPlan, sxm: str, acc: Word):
    """``blocked`` for :meth:`Placer.place` of an attempt that starts with
    :func:`_rotate_first`: its first test, made on :attr:`Placer.empty`."""
    x = pl.pos[sxm]
    group = plan.groups[acc.gid]

    def blocked(ts: int) -> bool:
        return not (pl.empty.free(sxm, ts) and pl.group_free(pl.empty, group, x, ts, acc.ready))
    return blocked


def _run_steps(txn: Txn, steps: int, op_step, state: tuple):
    """Place a chain's ops in turn: ``op_step(txn, k, *state)`` gives the next op's state, or
    ``(ready,)`` from the last op, or ``None`` (the chain does not fit); returns ``ready`` or
    ``None``."""
    for k in range(steps):
        state = op_step(txn, k, *state)
        if state is None:
            return None
        if len(state) == 1:
            return state[0]
    return None
