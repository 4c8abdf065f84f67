"""One word of an element-wise VXM op or an SXM ``PERMUTE``: reads, the op, the writes.

A VXM op on one output word reads each distinct operand word from its MEM group so that all
arrive at the VXM in the op's issue cycle ``R``, and writes the result word to its group.
Operands that share a MEM slice cannot be read for the same cycle (a slice issues one
instruction per cycle), so all but one of them are read earlier and *held* by ``MOV``s on
other ALUs (``MOV`` latency 2: one MOV per 2 cycles of delay). Special functions run only on
the ALUs that have the special-function unit (``ChipConfig.vxm_special_alus``).

A ``PERMUTE`` word goes through the SXM on the side of its operand: the operand and the int16
lane map arrive there together, the result flows back to its group.
"""

from __future__ import annotations

from dataclasses import dataclass

from openlpu.isa import DType, Instruction, Opcode, latency, missing_feature, stream_code

from .alloc import SramPlan
from .errors import LoweringError
from .placer import Placer
from .resources import Txn

__all__ = ["Word", "permute_word", "vxm_word"]

_DT = {8: DType.I8, 16: DType.I16, 32: DType.I32}


@dataclass(frozen=True)
class Word:
    """A word in SRAM: its group, address and the first cycle it may be read."""

    gid: int
    addr: int
    ready: int = 0


def _delays(plan: SramPlan, words: list[Word]) -> list[int]:
    """Hold distance (in MOVs) of each word so that words sharing a slice arrive apart."""
    out: list[int] = []
    for i, w in enumerate(words):
        mine = set(plan.groups[w.gid])
        d = 0
        while any(out[k] == d and mine.intersection(plan.groups[words[k].gid])
                  for k in range(i)):
            d += 1
        out.append(d)
    return out


def _deliver(pl: Placer, plan: SramPlan, txn: Txn, w: Word, delay: int, at: int,
             width: int, key: object) -> int | None:
    """Bring word ``w`` to the VXM so that it is present in cycle ``at``; its stream code."""
    group = plan.groups[w.gid]
    d = pl.toward(pl.pos[group[0]], pl.v)
    arrive = at - 2 * delay
    if not pl.group_free(txn, group, pl.v, arrive, w.ready):
        return None
    for base in pl.bases(width, key):
        m = txn.mark()
        if pl.read_group(txn, group, w.addr, d, base, pl.v, arrive, w.ready):
            code = stream_code(d, base)
            ok = True
            for step in range(delay):
                t = arrive + 2 * step
                ok = False
                for alu in pl.alus:
                    for d2, b2 in [(x, b) for x in (d, 1 - d) for b in pl.bases(width)]:
                        m2 = txn.mark()
                        nxt = stream_code(d2, b2)
                        mov = Instruction(Opcode.MOV, dtype=_DT[8 * width].value,
                                          stype=_DT[8 * width].value, dst=nxt, a=code)
                        if txn.slot(alu, t, mov) and all(
                                txn.path(d2, b2 + k, pl.v, t + 2, pl.v) for k in range(width)):
                            code, ok = nxt, True
                            break
                        txn.rollback(m2)
                    if ok:
                        break
                if not ok:
                    break
            if ok:
                pl.sticky[key] = base
                return code
        txn.rollback(m)
    return None


def _sxm_for(pl: Placer, plan: SramPlan, gid: int) -> str:
    """The SXM on the side of group ``gid`` (values of that side flow to it)."""
    return "sxm_w" if pl.pos[plan.groups[gid][0]] < pl.v else "sxm_e"


def _permute_on(pl: Placer, plan: SramPlan, txn: Txn, sxm: str, ts: int, d_in: int, a: int,
                width: int, lane_map: Word, out: tuple[int, int]) -> int | None:
    """``PERMUTE`` in cycle ``ts`` of the word on streams ``a ..`` (claimed by the caller up
    to the SXM) with ``lane_map`` read from SRAM; writes the result to ``out``. Returns the
    cycle the result is readable, or ``None``."""
    x = pl.pos[sxm]
    map_group = plan.groups[lane_map.gid]
    out_group = plan.groups[out[0]]
    d_out = pl.toward(x, pl.pos[out_group[0]])
    lat = latency(Opcode.PERMUTE, pl.config)
    if not (txn.free(sxm, ts) and pl.group_free(txn, map_group, x, ts, lane_map.ready)
            and pl.group_free(txn, out_group, x, ts + lat)):
        return None
    for b in pl.bases(2, ("perm_b", sxm)):
        if b < a + width and a < b + 2:
            continue
        m = txn.mark()
        if not pl.read_group(txn, map_group, lane_map.addr, d_in, b, x, ts, lane_map.ready):
            txn.rollback(m)
            continue
        for o in pl.bases(width, ("perm_o", sxm)):
            m2 = txn.mark()
            instr = Instruction(Opcode.PERMUTE, dtype=_DT[8 * width].value,
                                stype=_DT[8 * width].value, dst=stream_code(d_out, o),
                                a=stream_code(d_in, a), b=stream_code(d_in, b))
            if txn.slot(sxm, ts, instr):
                ready = pl.write_group(txn, out_group, out[1], d_out, o, x, ts + lat)
                if ready is not None:
                    pl.sticky.update({("perm_b", sxm): b, ("perm_o", sxm): o})
                    return ready
            txn.rollback(m2)
        txn.rollback(m)
    return None


def vxm_word(pl: Placer, plan: SramPlan, opcode: Opcode, bits: int, stype_bits: int,
             operands: dict[str, Word], out: tuple[int, int], *, imm: int | None = None,
             shift: int = 0, then_permute: tuple[Word, tuple[int, int]] | None = None):
    """Place one VXM instruction on one word; returns the cycle its result is readable.

    ``operands`` maps instruction fields (``a``, ``b``, and ``c`` for ``SEL``'s condition)
    to words; ``imm`` replaces ``b`` by an immediate; ``shift`` is ``REQ``'s ``c``.
    ``then_permute = (lane map, out2)`` also sends the result on to the SXM on ``out``'s side
    (writing it to ``out`` on the way) and permutes it into ``out2``: returns both ready
    cycles.
    """
    widths = {"a": stype_bits // 8, "b": stype_bits // 8, "c": stype_bits // 8}
    if opcode is Opcode.REQ:
        widths = {"a": 4, "b": 4}
    distinct = list(dict.fromkeys(operands.values()))
    delays = _delays(plan, distinct)
    width_of = {w: widths[f] for f, w in operands.items()}
    out_group = plan.groups[out[0]]
    out_dir = pl.toward(pl.v, pl.pos[out_group[0]])
    out_w = bits // 8
    lat = latency(opcode, pl.config)
    alus = [a for a in pl.alus if missing_feature(opcode, a, pl.config) is None]
    if not alus:
        raise LoweringError(f"config {pl.config.name!r}: "
                            f"{missing_feature(opcode, pl.alus[0], pl.config)}")
    last = pl.sticky.get(("alu", opcode))
    if last in alus:
        alus.remove(last)
        alus.insert(0, last)

    def attempt(txn: Txn, r: int):
        if not pl.group_free(txn, out_group, pl.v, r + lat) or not any(
                txn.free(alu, r) for alu in alus):
            return None
        codes = {}
        for i, w in enumerate(distinct):
            code = _deliver(pl, plan, txn, w, delays[i], r, width_of[w], ("opnd", i))
            if code is None:
                return None
            codes[w] = code
        fields = {f: codes[w] for f, w in operands.items()}
        if opcode is Opcode.REQ:
            fields["c"] = shift
        if imm is not None:
            fields.update(bimm=1, imm=imm)
        for alu in alus:
            if not txn.free(alu, r):
                continue
            for base in pl.bases(out_w, ("out", out_dir)):
                m = txn.mark()
                instr = Instruction(opcode, dtype=_DT[bits].value, stype=_DT[stype_bits].value,
                                    dst=stream_code(out_dir, base), **fields)
                if txn.slot(alu, r, instr):
                    ready = emit(txn, base, r + lat)
                    if ready is not None:
                        pl.sticky[("out", out_dir)] = base
                        pl.sticky[("alu", opcode)] = alu
                        return ready
                txn.rollback(m)
        return None

    def emit(txn: Txn, base: int, present: int):
        if then_permute is None:
            return pl.write_group(txn, out_group, out[1], out_dir, base, pl.v, present)
        sxm = _sxm_for(pl, plan, out[0])
        x = pl.pos[sxm]
        if not all(txn.path(out_dir, base + k, pl.v, present, x) for k in range(out_w)):
            return None
        ready = pl.write_group(txn, out_group, out[1], out_dir, base, pl.v, present,
                               claim=False)
        if ready is None:
            return None
        ready2 = _permute_on(pl, plan, txn, sxm, present + abs(x - pl.v), out_dir, base,
                             out_w, *then_permute)
        return None if ready2 is None else (ready, ready2)

    earliest = 0
    for i, w in enumerate(distinct):
        far = max(abs(pl.pos[s] - pl.v) for s in plan.groups[w.gid])
        earliest = max(earliest, w.ready + 2 + far + 2 * delays[i])
    _, ready = pl.place(earliest, attempt, f"{opcode.name} word")
    return ready


def permute_word(pl: Placer, plan: SramPlan, bits: int, src: Word, lane_map: Word,
                 out: tuple[int, int]) -> int:
    """Place ``PERMUTE.i<bits> out, src, lane_map`` on the SXM nearest ``src``; returns the
    cycle its result is readable."""
    group = plan.groups[src.gid]
    sxm = _sxm_for(pl, plan, src.gid)
    x = pl.pos[sxm]
    d_in = pl.toward(pl.pos[group[0]], x)
    nb = bits // 8

    def attempt(txn: Txn, ts: int):
        if not (txn.free(sxm, ts) and pl.group_free(txn, group, x, ts, src.ready)):
            return None
        for a in pl.bases(nb, ("perm_a", sxm)):
            m = txn.mark()
            if pl.read_group(txn, group, src.addr, d_in, a, x, ts, src.ready):
                ready = _permute_on(pl, plan, txn, sxm, ts, d_in, a, nb, lane_map, out)
                if ready is not None:
                    pl.sticky[("perm_a", sxm)] = a
                    return ready
            txn.rollback(m)
        return None

    far = max(abs(pl.pos[s] - x) for s in group + plan.groups[lane_map.gid])
    _, ready = pl.place(max(src.ready, lane_map.ready) + 2 + far, attempt, "PERMUTE word")
    return ready
