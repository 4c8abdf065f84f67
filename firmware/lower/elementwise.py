"""One word of an element-wise VXM op or an SXM ``PERMUTE``: reads, the op, the writes.

A VXM op on one output word reads each distinct operand word from its MEM group so that all
arrive at the VXM in the op's issue cycle ``R``, and writes the result word to its group.
Operands that share a MEM slice cannot be read for the same cycle (a slice issues one
instruction per cycle), so all but one of them are read earlier and *held* by ``MOV``s on
other ALUs (one MOV per ``MOV`` latency of delay: 2 cycles, more with a deep VXM pipeline).
Special functions run only on the ALUs that have the special-function unit
(``ChipConfig.vxm_special_alus``).

A *chain* (:func:`vxm_chain`) places several ops on one word at once, each reading its
predecessor's result from the stream at the VXM in the cycle it appears there.

A ``PERMUTE`` word goes through the SXM on the side of its operand: the operand and the int16
lane map arrive there together, the result flows back to its group.
"""

from __future__ import annotations

from dataclasses import dataclass

from openlpu.isa import DType, Instruction, Opcode, latency, missing_feature, stream_code

from .alloc import SramPlan
from .errors import LoweringError
from .placer import MAX_WAIT, Placer
from .resources import Txn

__all__ = ["CHAINED", "VxmStep", "Word", "permute_word", "vxm_chain", "vxm_word"]

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
    lat = latency(Opcode.MOV, pl.config)  # 2, or more with the config's vxm_deep_pipeline
    arrive = at - lat * delay
    if not pl.group_free(txn, group, pl.v, arrive, w.ready):
        return None
    for base in pl.bases(width, key):
        m = txn.mark()
        if pl.read_group(txn, group, w.addr, d, base, pl.v, arrive, w.ready):
            code = stream_code(d, base)
            ok = True
            for step in range(delay):
                t = arrive + lat * step
                ok = False
                for alu in pl.alus:
                    for d2, b2 in [(x, b) for x in (d, 1 - d) for b in pl.bases(width)]:
                        m2 = txn.mark()
                        nxt = stream_code(d2, b2)
                        mov = Instruction(Opcode.MOV, dtype=_DT[8 * width].value,
                                          stype=_DT[8 * width].value, dst=nxt, a=code)
                        if txn.slot(alu, t, mov) and all(
                                txn.path(d2, b2 + k, pl.v, t + lat, pl.v)
                                for k in range(width)):
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
                width: int, lane_map: Word, dest: int, finish):
    """``PERMUTE`` in cycle ``ts`` of the word on streams ``a ..`` (claimed by the caller up
    to the SXM) with ``lane_map`` read from SRAM; the result heads for position ``dest`` and
    ``finish(txn, direction, base, present)`` claims its way there. Returns what ``finish``
    returns, or ``None``."""
    x = pl.pos[sxm]
    map_group = plan.groups[lane_map.gid]
    d_out = pl.toward(x, dest)
    lat = latency(Opcode.PERMUTE, pl.config)
    if not (txn.free(sxm, ts) and pl.group_free(txn, map_group, x, ts, lane_map.ready)):
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
                got = finish(txn, d_out, o, ts + lat)
                if got is not None:
                    pl.sticky.update({("perm_b", sxm): b, ("perm_o", sxm): o})
                    return got
            txn.rollback(m2)
        txn.rollback(m)
    return None


def _writer(pl: Placer, plan: SramPlan, sxm: str, out: tuple[int, int]):
    """``finish`` for :func:`_permute_on`: write the result to word ``out``."""
    group = plan.groups[out[0]]
    x = pl.pos[sxm]

    def finish(txn: Txn, d: int, o: int, present: int):
        if not pl.group_free(txn, group, x, present):
            return None
        return pl.write_group(txn, group, out[1], d, o, x, present)
    return pl.pos[group[0]], finish


#: Stands for the previous step's result in a chain (:func:`vxm_chain`): taken from its
#: stream at the VXM in the cycle it appears there, not read from SRAM.
CHAINED = Word(-1, -1)


@dataclass
class VxmStep:
    """One VXM instruction on one word: ``operands`` maps fields (``a``, ``b``, ``c`` for
    ``SEL``'s condition) to words (or :data:`CHAINED`); ``imm`` replaces ``b`` by an
    immediate; ``shift`` is ``REQ``'s ``c``; the result goes to ``out`` (group, address);
    ``op`` names the op it belongs to."""

    opcode: Opcode
    bits: int
    stype_bits: int
    operands: dict[str, Word]
    out: tuple[int, int]
    imm: int | None = None
    shift: int = 0
    op: str = "?"


class _Prepared:
    """What the placement of a :class:`VxmStep` needs, computed once."""

    def __init__(self, pl: Placer, plan: SramPlan, step: VxmStep):
        widths = {f: step.stype_bits // 8 for f in "abc"}
        if step.opcode is Opcode.REQ:
            widths = {"a": 4, "b": 4}
        self.step = step
        self.distinct = [w for w in dict.fromkeys(step.operands.values()) if w is not CHAINED]
        self.delays = _delays(plan, self.distinct)
        self.width_of = {w: widths[f] for f, w in step.operands.items()}
        self.out_group = plan.groups[step.out[0]]
        self.out_dir = pl.toward(pl.v, pl.pos[self.out_group[0]])
        self.lat = latency(step.opcode, pl.config)
        alus = [a for a in pl.alus if missing_feature(step.opcode, a, pl.config) is None]
        if not alus:
            raise LoweringError(f"config {pl.config.name!r}: "
                                f"{missing_feature(step.opcode, pl.alus[0], pl.config)}")
        last = pl.sticky.get(("alu", step.opcode))
        if last in alus:
            alus.remove(last)
            alus.insert(0, last)
        self.alus = alus
        self._tests = None  # what blocked() looks at, made on its first call
        self.earliest = 0
        for i, w in enumerate(self.distinct):
            far = max(abs(pl.pos[s] - pl.v) for s in plan.groups[w.gid])
            self.earliest = max(self.earliest, w.ready + 2 + far + 2 * self.delays[i])

    def blocked(self, pl: Placer, plan: SramPlan, r: int) -> bool:
        """Whether :meth:`place` at VXM cycle ``r`` on an empty transaction fails its first
        tests, before it claims or changes anything: the result's writers or every ALU
        taken, or the first operand's ``READ`` slots (those of :func:`_deliver`). The same
        tests as ``Placer.group_free`` and ``Txn.free`` make on :attr:`Placer.empty`, on the
        queues' timetables directly (a placement may pass over thousands of cycles)."""
        if self._tests is None:
            tb = pl.builder.timetable
            outs = [(tb(s), self.lat + abs(pl.pos[s] - pl.v)) for s in self.out_group]
            reads, ready = [], 0
            if self.distinct:
                w = self.distinct[0]
                back = latency(Opcode.MOV, pl.config) * self.delays[0] + 2
                reads = [(tb(s), -back - abs(pl.pos[s] - pl.v)) for s in plan.groups[w.gid]]
                ready = w.ready
            self._tests = outs, [tb(a) for a in self.alus], reads, ready
        outs, alus, reads, ready = self._tests
        floor = pl.res.floor
        for slots, off in outs:
            if r + off < floor or r + off in slots:
                return True
        if r < floor or all(r in slots for slots in alus):
            return True
        for slots, off in reads:
            if r + off < ready or r + off < floor or r + off in slots:
                return True
        return False

    def place(self, pl: Placer, plan: SramPlan, txn: Txn, r: int, chained: int | None,
              emit) -> tuple[object, int] | None:
        """Claim the step at VXM cycle ``r`` (``chained``: the stream code holding the
        previous result then); ``emit(txn, base, present)`` routes the result. Returns
        ``(emit's result, result stream code)`` or ``None``."""
        st = self.step
        if not pl.group_free(txn, self.out_group, pl.v, r + self.lat) or not any(
                txn.free(alu, r) for alu in self.alus):
            return None
        codes = {CHAINED: chained}
        for i, w in enumerate(self.distinct):
            code = _deliver(pl, plan, txn, w, self.delays[i], r, self.width_of[w], ("opnd", i))
            if code is None:
                return None
            codes[w] = code
        fields = {f: codes[w] for f, w in st.operands.items()}
        if st.opcode is Opcode.REQ:
            fields["c"] = st.shift
        if st.imm is not None:
            fields.update(bimm=1, imm=st.imm)
        out_w = st.bits // 8
        for alu in self.alus:
            if not txn.free(alu, r):
                continue
            for base in pl.bases(out_w, ("out", self.out_dir)):
                m = txn.mark()
                instr = Instruction(st.opcode, dtype=_DT[st.bits].value,
                                    stype=_DT[st.stype_bits].value,
                                    dst=stream_code(self.out_dir, base), **fields)
                if txn.slot(alu, r, instr):
                    out = emit(txn, base, r + self.lat)
                    if out is not None:
                        pl.sticky[("out", self.out_dir)] = base
                        pl.sticky[("alu", st.opcode)] = alu
                        return out, stream_code(self.out_dir, base)
                txn.rollback(m)
        return None


#: How far past its earliest cycle a chain may be pushed before its steps are placed one by
#: one instead (its fixed step-to-step timing may collide with itself for ever).
CHAIN_WAIT = 200


def vxm_chain(pl: Placer, plan: SramPlan, steps: list[VxmStep]) -> list[int]:
    """Place VXM instructions that feed each other on one word: step ``k + 1`` issues in the
    cycle step ``k``'s result appears at the VXM and reads it from its stream (every result
    is also written to its own word on the way). If the chain does not fit within
    :data:`CHAIN_WAIT` cycles, its steps go one by one through SRAM. Returns each result's
    ready cycle."""
    if len(steps) > 1:
        try:
            return _place_chain(pl, plan, steps, CHAIN_WAIT)
        except LoweringError:
            pass
    readies: list[int] = []
    for st in steps:
        if readies:
            prev = Word(steps[len(readies) - 1].out[0], steps[len(readies) - 1].out[1],
                        readies[-1])
            st = VxmStep(st.opcode, st.bits, st.stype_bits,
                         {f: prev if w is CHAINED else w for f, w in st.operands.items()},
                         st.out, st.imm, st.shift, st.op)
        readies += _place_chain(pl, plan, [st], MAX_WAIT)
    return readies


def _place_chain(pl: Placer, plan: SramPlan, steps: list[VxmStep], max_wait: int
                 ) -> list[int]:
    preps = [_Prepared(pl, plan, s) for s in steps]
    offsets = [sum(p.lat for p in preps[:k]) for k in range(len(preps))]

    def attempt(txn: Txn, r1: int):
        readies, code = [], None
        for p, off in zip(preps, offsets, strict=True):
            mark = len(txn.slots)

            def emit(txn: Txn, base: int, present: int, p=p):
                return pl.write_group(txn, p.out_group, p.step.out[1], p.out_dir, base,
                                      pl.v, present)
            got = p.place(pl, plan, txn, r1 + off, code, emit)
            if got is None:
                return None
            for q, c, _ in txn.slots[mark:]:
                pl.pending_owner[(q, c)] = p.step.op
            readies.append(got[0])
            code = got[1]
        return readies

    earliest = max(p.earliest - off for p, off in zip(preps, offsets, strict=True))
    names = "+".join(s.opcode.name for s in steps)
    _, readies = pl.place(earliest, attempt, f"{names} word", max_wait,
                          lambda r1: preps[0].blocked(pl, plan, r1))
    return readies


def vxm_word(pl: Placer, plan: SramPlan, opcode: Opcode, bits: int, stype_bits: int,
             operands: dict[str, Word], out: tuple[int, int], *, imm: int | None = None,
             shift: int = 0, then_permute: tuple[Word, tuple[int, int]] | None = None):
    """Place one VXM instruction on one word; returns the cycle its result is readable.

    Arguments as the fields of :class:`VxmStep`. ``then_permute = (lane map, out2)`` also
    sends the result on to the SXM on ``out``'s side (writing it to ``out`` on the way) and
    permutes it into ``out2``: returns both ready cycles.
    """
    if then_permute is None:
        return vxm_chain(pl, plan, [VxmStep(opcode, bits, stype_bits, operands, out, imm,
                                            shift, pl.op)])[0]
    prep = _Prepared(pl, plan, VxmStep(opcode, bits, stype_bits, operands, out, imm, shift))
    out_w = bits // 8

    def emit(txn: Txn, base: int, present: int):
        sxm = _sxm_for(pl, plan, out[0])
        x = pl.pos[sxm]
        if not all(txn.path(prep.out_dir, base + k, pl.v, present, x) for k in range(out_w)):
            return None
        ready = pl.write_group(txn, prep.out_group, out[1], prep.out_dir, base, pl.v, present,
                               claim=False)
        if ready is None:
            return None
        ready2 = _permute_on(pl, plan, txn, sxm, present + abs(x - pl.v), prep.out_dir, base,
                             out_w, then_permute[0], *_writer(pl, plan, sxm, then_permute[1]))
        return None if ready2 is None else (ready, ready2)

    def attempt(txn: Txn, r: int):
        got = prep.place(pl, plan, txn, r, None, emit)
        return None if got is None else got[0]

    _, ready = pl.place(prep.earliest, attempt, f"{opcode.name} word",
                        blocked=lambda r: prep.blocked(pl, plan, r))
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
                ready = _permute_on(pl, plan, txn, sxm, ts, d_in, a, nb, lane_map,
                                    *_writer(pl, plan, sxm, out))
                if ready is not None:
                    pl.sticky[("perm_a", sxm)] = a
                    return ready
            txn.rollback(m)
        return None

    def blocked(ts: int) -> bool:  # the first test of attempt
        return not (pl.empty.free(sxm, ts) and pl.group_free(pl.empty, group, x, ts, src.ready))

    far = max(abs(pl.pos[s] - x) for s in group + plan.groups[lane_map.gid])
    _, ready = pl.place(max(src.ready, lane_map.ready) + 2 + far, attempt, "PERMUTE word",
                        blocked=blocked)
    return ready

