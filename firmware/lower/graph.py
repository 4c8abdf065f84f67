"""Tensor-level lowering: the :class:`~sim_models.transformer.ops.IntOps` vocabulary on SRAM
tensors.

:class:`LayerGraph` offers one method per instruction kind of the integer reference
(``vxm`` for ADD/SUB/ADDS/MUL/MAX/SEL/SHRR/CVT/REQ/EXP/RECIP/RSQRT/GELU/SILU, ``reduce`` for
the ADD/MAX lane reductions, ``permute``, ``mxm`` for ABC). Each takes :class:`Tensor` operands
(and NumPy constants, broadcast like the reference broadcasts them), allocates its result,
places every word's instructions with a :class:`~firmware.lower.placer.Placer` and records the
result under the reference's trace name, so that the final SRAM can be compared with the
reference tensor by tensor.

Chaining: an element-wise op on a short tensor (at most :data:`CHAIN_WORDS` words) that
consumes the previous op's result word for word joins a *chain*: the chain is placed word by
word, each op reading its predecessor's result from the stream at the VXM in the cycle it
appears (it is written to SRAM on the way too), which saves an SRAM round trip per op.

Broadcasting: a tensor operand either has the result's word layout (same words, same lanes)
or is a replicated per-row scalar (a reduction result). A constant operand becomes a
REQ/VXM immediate when it is one value that fits, and otherwise constant words laid out like
the result (deduplicated, so a per-channel vector costs one word per column tile).

SRAM reuse: every read of a tensor's word is noted (:attr:`LayerGraph.last_use`, by the
tensor's lifetime key, see :mod:`firmware.lower.alloc`). A graph given the last uses of an
earlier lowering of the same layer (``live=``) releases a tensor's words once every op that
reads it is placed, and an op's scratch words once the op is placed; the plan hands them out
again behind a fence (:class:`firmware.lower.resources.Reservations`). A read of a word that
has changed hands raises :class:`LoweringError` instead of reading the wrong value.

Lane reductions: padding lanes are replaced by the identity (``SEL`` against a constant lane
mask), the row's words are combined with the VXM op, and ``log2 L`` butterfly steps
(``PERMUTE`` by a lane rotation, then the op) leave the result in every lane (a row of one
word needs only ``log2`` of its element count, see :meth:`LayerGraph.reduce`; each row's
butterfly goes as one chain, :mod:`firmware.lower.butterfly`, where it fits). Sums go
through an MXM plane instead where that is estimated faster (:mod:`firmware.lower.lane_sum`:
the full chip's SXMs are 45 hops from the VXM). Wrapping ``ADD`` and ``MAX`` are associative
and commutative, so the result equals the reference's tree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from openlpu.config import ChipConfig
from openlpu.isa import Opcode

from .alloc import SramPlan, Tensor
from .butterfly import MIRROR_WAIT, butterfly_chain, mirrored_chain
from .elementwise import CHAIN_WAIT, CHAINED, VxmStep, Word, permute_word, vxm_chain, vxm_word
from .errors import LoweringError
from .lane_sum import mxm_lane_sums, mxm_sum_is_faster
from .layout import Layout
from .matmul import MxmBlock, run_blocks
from .placer import Placer

__all__ = ["LayerGraph", "OpRecord"]

INT32_MIN = -(1 << 31)
#: Longest chain of element-wise ops placed together (each reading the previous result
#: from its stream): longer chains save more SRAM round trips but are harder to fit.
MAX_CHAIN = 4
#: Only ops on at most this many words chain: chaining saves latency, which matters for short
#: tensors (decode, per-row scalars); long tensors pipeline better op by op.
CHAIN_WORDS = 16
#: Ops whose ``b`` operand may be an immediate (``bimm``).
_NO_B = {Opcode.CVT, Opcode.EXP, Opcode.RECIP, Opcode.RSQRT, Opcode.GELU, Opcode.SILU,
         Opcode.MOV}


@dataclass
class OpRecord:
    """One lowered op: its trace name, instruction kind, result tensor and useful MACs."""

    name: str
    kind: str
    tensor: Tensor
    macs: int = 0


def _imm_ok(value: int, bits: int, opcode: Opcode) -> bool:
    if opcode in (Opcode.SHRR, Opcode.SHL, Opcode.SHR, Opcode.SHRU):
        return 0 <= value < bits
    if opcode is Opcode.REQ or bits == 32:
        return -(1 << 23) <= value < (1 << 23)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return lo <= value <= hi


class LayerGraph:
    """Lowers ops one by one into one program for ``config`` (see the module docstring);
    ``plan`` holds the SRAM addresses, ``pl`` the timetable, ``records`` the lowered ops."""

    def __init__(self, config: ChipConfig, cut_before: frozenset[str] = frozenset(),
                 live: dict[tuple, int] | None = None):
        self.config = config
        #: Ops that start a new program (:meth:`firmware.lower.placer.Placer.cut`): the
        #: layer's code is split where one program would not fit the instruction queues.
        self.cut_before = cut_before
        #: Names of the ops placed so far, in program order (the candidates for a cut).
        self.op_order: list[str] = []
        self.L = config.lanes
        self.plan = SramPlan(config, reuse=live is not None)
        self.pl = Placer(config)
        #: Lifetime key -> the last op (index in :attr:`op_order`, plus one) that read it;
        #: scratch words count as read by the op after the one that made them.
        self.last_use: dict[tuple, int] = {}
        #: Keys still to be released (SRAM reuse), by their last use from ``live``.
        self._dying = sorted((u, k) for k, u in (live or {}).items())
        #: Keys released so far (their final SRAM words belong to later tensors).
        self.released: set[tuple] = set()
        self.records: dict[str, OpRecord] = {}
        self.inputs: dict[str, Tensor] = {}
        #: Element-wise ops recorded but not placed yet: (result, step per word).
        self._pending: list[tuple[Tensor, dict[tuple[int, int], VxmStep]]] = []

    # --- helpers ---------------------------------------------------------------------------

    def _slices(self, *tensors: Tensor) -> set[str]:
        out: set[str] = set()
        for t in tensors:
            for g in np.unique(t.gid[t.gid >= 0]):
                out.update(self.plan.groups[int(g)])
        return out

    def _begin(self, name: str) -> None:
        """Every op method starts here: a new program before the ops in ``cut_before``."""
        self.op_order.append(name)
        self.plan.op_index = len(self.op_order) - 1
        if name in self.cut_before:
            self.flush()
            self.pl.cut()
        self._release_dead()

    def _release_dead(self) -> None:
        """Release the keys no op from the current one on reads (with nothing pending: a
        pending op's reads are not placed yet)."""
        if self._pending:
            return
        current = len(self.op_order) - 1
        while self._dying and self._dying[0][0] < current:
            _, key = self._dying.pop(0)
            if key in self.plan.kept:
                continue
            for s, a in self.plan.release(key):
                self.pl.res.fence(s, a)
            self.released.add(key)

    def _record(self, name: str, kind: str, t: Tensor, macs: int = 0) -> Tensor:
        if name in self.records:
            raise LoweringError(f"op name {name!r} is used twice")
        self.records[name] = OpRecord(name, kind, t, macs)
        return t

    def word(self, t: Tensor, r: int, j: int) -> Word:
        """Word ``(r, j)`` of ``t`` as an operand (placing the pending element-wise ops first,
        so that its ready cycle is known)."""
        if self._pending and self._pending_tensor(t):
            self.flush()
        return self._word(t, r, j)

    def _word(self, t: Tensor, r: int, j: int) -> Word:
        w = Word(int(t.gid[r, j]), int(t.addr[r, j]), int(t.ready[r, j]))
        if t.key is not None:
            # Reads are made while an op is built (before or after its _begin): count them
            # for the op after the current one, so a release never comes before them.
            self.last_use[t.key] = len(self.op_order)
            if self.plan.reuse and self.plan.key_at(w.gid, w.addr) != t.key:
                op = self.op_order[-1] if self.op_order else "(none yet)"
                raise LoweringError(
                    f"tensor {t.name} is read at op {op} after its SRAM word "
                    f"({self.plan.groups[w.gid][0]}, address {w.addr}) was released; the "
                    f"lowering's liveness differs from the first pass")
        return w

    def scratch(self, bits: int, avoid: set[str], what: str,
                side: str | None = None) -> tuple[int, int]:
        """A fresh word for an intermediate value nobody compares, read only by the current
        op."""
        self.last_use[("s", self.plan.op_index)] = len(self.op_order)
        return self.plan.scratch(bits, avoid, what, side)

    def input(self, name: str, bits: int, layout: Layout) -> Tensor:
        """A tensor the host writes before the run (see :meth:`SramPlan.bind`)."""
        t = self.plan.tensor(name, bits, layout)
        self.inputs[name] = t
        return t

    def const(self, name: str, bits: int, layout: Layout, values,
              avoid: set[str] = frozenset()) -> Tensor:
        """Constant words holding ``values`` in ``layout``."""
        return self.plan.const_tensor(name, bits, layout, values, avoid)

    def _operand_words(self, t: Tensor, out: Layout) -> dict[tuple[int, int], tuple[int, int]]:
        """Output word -> word of ``t`` (same lanes, or a replicated per-row scalar)."""
        shape = out.shape
        try:
            orow = np.broadcast_to(t.layout.mrow, shape).reshape(-1)
            ocol = np.broadcast_to(t.layout.mcol, shape).reshape(-1)
        except ValueError as e:
            raise LoweringError(f"operand {t.name} of shape {t.layout.shape} does not "
                                f"broadcast to {shape}") from e
        mrow, mcol = out.mrow.reshape(-1), out.mcol.reshape(-1)
        if not t.layout.replicated and not (ocol % self.L == mcol % self.L).all():
            raise LoweringError(f"operand {t.name}: its lanes do not line up with the result")
        okey = orow * t.layout.tiles + ocol // self.L
        key = mrow * out.tiles + mcol // self.L
        first: dict[int, int] = {}
        for k, o in zip(key.tolist(), okey.tolist(), strict=True):
            if first.setdefault(k, o) != o:
                raise LoweringError(f"operand {t.name}: one result word needs two of its "
                                    f"words")
        return {divmod(k, out.tiles): divmod(o, t.layout.tiles) for k, o in first.items()}

    # --- element-wise ----------------------------------------------------------------------

    def vxm(self, name: str, opcode: Opcode, bits: int, a, b=None, cond=None, *,
            stype_bits: int | None = None, shift: int = 0, out: Tensor | None = None,
            kind: str | None = None) -> Tensor:
        """One VXM instruction kind applied to every word of the result.

        ``a``, ``b``, ``cond`` (SEL's condition) are tensors or constants; the result takes
        the layout of the first non-replicated tensor operand (or of ``out``, a tensor to
        write into, e.g. a KV-cache row).
        """
        self._begin(name)
        sbits = bits if stype_bits is None else stype_bits
        if opcode is Opcode.REQ:
            sbits = 32
        given = {"a": a, "b": b, "c": cond}
        tensors = {f: v for f, v in given.items() if isinstance(v, Tensor)}
        if out is not None:
            layout = out.layout
        else:
            ts = sorted(tensors.values(), key=lambda t: t.layout.replicated)
            shape = np.broadcast_shapes(*(t.layout.shape for t in ts),
                                        *(np.shape(v) for f, v in given.items()
                                          if v is not None and f not in tensors))
            base = ts[0].layout
            if base.shape != shape:
                raise LoweringError(f"{name}: result shape {shape} differs from its first "
                                    f"operand's {base.shape}")
            layout = base
        avoid = self._slices(*tensors.values())
        imm = None
        consts: dict[str, np.ndarray] = {}
        for f, v in given.items():
            if v is None or f in tensors:
                continue
            arr = np.asarray(v, np.int64)
            if (f == "b" and arr.ndim == 0 and opcode not in _NO_B
                    and _imm_ok(int(arr), sbits, opcode)):
                imm = int(arr)
                continue
            consts[f] = layout.store(arr)
        cb = 32 if opcode is Opcode.REQ else sbits
        res = out if out is not None else self.plan.tensor(name, bits, layout, avoid)
        maps = {f: self._operand_words(t, layout) for f, t in tensors.items()}
        words = list(zip(*np.nonzero(layout.words()), strict=True))
        chained = self._chain_fields(tensors, maps, words)
        if not chained:
            self.flush()
        L = self.L  # noqa: N806
        steps = {}
        for r, j in words:
            ops = {f: CHAINED if f in chained else self._word(t, *maps[f][(r, j)])
                   for f, t in tensors.items()}
            near = {s for w in ops.values() if w is not CHAINED for s in self.plan.groups[w.gid]}
            near |= set(self.plan.groups[int(res.gid[r, j])])
            for f, mat in consts.items():
                w = Word(*self.plan.const_word(cb, mat[r, j * L:(j + 1) * L], near,
                                               f"constant of {name}", spread=int(r)))
                near |= set(self.plan.groups[w.gid])
                ops[f] = w
            steps[(int(r), int(j))] = VxmStep(opcode, bits, sbits, ops, res.loc(r, j), imm,
                                              shift, name)
        self._pending.append((res, steps))
        label = kind or f"{opcode.name}.i{bits}"
        return self._record(name, label, res)

    def _pending_tensor(self, t: Tensor) -> bool:
        return any(t.ready is res.ready for res, _ in self._pending)

    def _chain_fields(self, tensors: dict[str, Tensor], maps: dict, words: list) -> set[str]:
        """The operand fields that can take the last pending op's result straight from its
        stream (same words, same lanes), or nothing if the op cannot join the chain."""
        if not self._pending or len(self._pending) >= MAX_CHAIN or len(words) > CHAIN_WORDS:
            return set()
        last, steps = self._pending[-1]
        fields = {f for f, t in tensors.items() if t.ready is last.ready}
        if not fields or set(steps) != {(int(r), int(j)) for r, j in words}:
            return set()
        if any(self._pending_tensor(t) for f, t in tensors.items() if f not in fields):
            return set()
        for f in fields:
            if any(maps[f][w] != w for w in words):
                return set()
        return fields

    def flush(self) -> None:
        """Place the pending chain of element-wise ops, word by word (each op reads the
        previous one's result from its stream, see :func:`vxm_chain`)."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        for w in pending[0][1]:
            readies = vxm_chain(self.pl, self.plan, [steps[w] for _, steps in pending])
            for (res, _), ready in zip(pending, readies, strict=True):
                res.ready[w] = ready
        self._release_dead()

    # --- lane reductions -------------------------------------------------------------------

    def _rotations(self, opcode: Opcode, n: int) -> tuple[list[np.ndarray],
                                                         np.ndarray | None]:
        """Lane maps of the butterfly steps over lanes ``0 .. n-1``, and the final broadcast
        map if one is needed.

        Rotating by 1, 2, 4, .. modulo ``n`` leaves the ``MAX`` of all ``n`` lanes in each of
        them (a lane may be counted twice, which ``MAX`` ignores), and the ``ADD`` too when
        ``n`` is a power of two. Otherwise the ``ADD`` shifts with zero fill (map entry
        ``0xFFFF``) so that lane 0 collects the sum, and a last ``PERMUTE`` copies lane 0 to
        every lane. Lanes ``>= n`` end up undefined (``n < L``: only a single-word row's own
        lanes are ever read)."""
        L = self.L  # noqa: N806
        lanes, out, s = np.arange(L), [], 1
        exact = opcode is Opcode.MAX or not n & (n - 1)
        while s < n:
            if exact:
                out.append((lanes % n + s) % n)
            else:
                out.append(np.where(lanes + s < n, lanes + s, -1))
            s *= 2
        return out, None if exact and out else np.zeros(L, np.int64)

    def _pair_op(self, opcode: Opcode, a: Word, b: Word, what: str,
                 loc: tuple[int, int] | None = None, bits: int = 32) -> Word:
        """``opcode.i<bits>`` of two words into a scratch word (or ``loc``)."""
        if loc is None:
            loc = self.scratch(bits, set(self.plan.groups[a.gid] + self.plan.groups[b.gid]),
                               what)
        return Word(*loc, vxm_word(self.pl, self.plan, opcode, bits, bits, {"a": a, "b": b},
                                   loc))

    def _mask_padding(self, w: Word, lanes: np.ndarray, ident: int, what: str) -> Word:
        """``SEL``: the lanes of ``w`` outside ``lanes`` replaced by ``ident``."""
        L = self.L  # noqa: N806
        mask = Word(*self.plan.const_word(32, -lanes, set(self.plan.groups[w.gid])))
        avoid = set(self.plan.groups[w.gid]) | set(self.plan.groups[mask.gid])
        operands = {"c": mask, "a": w}
        imm = 0 if ident == 0 else None
        if imm is None:
            operands["b"] = Word(*self.plan.const_word(32, np.full(L, ident), avoid))
        loc = self.scratch(32, avoid, what)
        return Word(*loc, vxm_word(self.pl, self.plan, Opcode.SEL, 32, 32, operands, loc,
                                   imm=imm))

    def reduce(self, name: str, opcode: Opcode, x: Tensor) -> Tensor:
        """``ADD``/``MAX`` over the last axis of int32 ``x``; the result is replicated.

        A row of several words: padding lanes masked, the words combined, then a butterfly
        over all lanes. A row of one word whose elements are lanes ``0 .. n-1`` (attention
        scores, short hidden sizes): a butterfly over those lanes only (``ceil(log2 n)``
        steps), leaving the result in those lanes, the only ones its consumers (ops on the
        same rows) read. Each row's butterfly is placed as one chain
        (:func:`~firmware.lower.butterfly.butterfly_chain`); rows where that does not fit go
        step by step over all of them (every row's first step, then every row's second ...),
        so that they pipeline through the SXM and the VXM."""
        self._begin(name)
        L = self.L  # noqa: N806
        ident = 0 if opcode is Opcode.ADD else INT32_MIN
        layout = x.layout.reduced()
        res = self.plan.tensor(name, 32, layout, self._slices(x))
        valid = x.layout.store(1)
        self.pl.op = name
        rows = [int(r) for r in np.unique(layout.mrow)]
        cur: dict[int, list[Word]] = {}
        width: dict[int, int] = {}
        for r in rows:
            cur[r] = []
            words = np.nonzero(x.gid[r] >= 0)[0]
            if len(words) == 1:  # one word: reduce over its own lanes, if they are 0 .. n-1
                lanes = valid[r, words[0] * L:(words[0] + 1) * L]
                n = int(lanes.sum())
                if lanes[:n].all():
                    cur[r], width[r] = [self.word(x, r, int(words[0]))], n
                    continue
            width[r] = L
            for j in words:
                w = self.word(x, r, int(j))
                lanes = valid[r, j * L:(j + 1) * L]
                cur[r].append(w if lanes.all() else
                              self._mask_padding(w, lanes, ident, f"{name} masked word"))
        while any(len(v) > 1 for v in cur.values()):
            for r in rows:
                words = cur[r]
                cur[r] = [self._pair_op(opcode, words[i], words[i + 1], f"{name} partial")
                          for i in range(0, len(words) - 1, 2)] + words[len(words) & ~1:]
        for n in sorted(set(width.values())):
            group = [r for r in rows if width[r] == n]
            if opcode is Opcode.ADD and mxm_sum_is_faster(self.pl, len(group), n):
                mxm_lane_sums(self, name, {r: cur[r][0] for r in group}, n, res)
            else:
                self._butterfly(name, opcode, {r: cur[r][0] for r in group}, n, res)
        return self._record(name, f"{opcode.name}.i32 (reduce)", res)

    def _butterfly(self, name: str, opcode: Opcode, acc: dict[int, Word], n: int,
                   res: Tensor) -> None:
        """Reduce each row's word ``acc[r]`` over its lanes ``0 .. n-1`` into ``res`` word
        ``(r, 0)``, step by step over all rows (see :meth:`_rotations`)."""
        rots, spread = self._rotations(opcode, n)
        maps = rots + ([spread] if spread is not None else [])
        if rots:
            for r in list(acc):
                if self._butterfly_chain(name, opcode, acc[r], maps, spread is not None,
                                         res, r):
                    del acc[r]
            if not acc:
                return
        rotated = {}
        for r in acc:
            m = Word(*self.plan.const_word(16, maps[0], set(self.plan.groups[acc[r].gid])))
            loc = res.loc(r, 0) if not rots else self.scratch(
                32, set(self.plan.groups[acc[r].gid] + self.plan.groups[m.gid]),
                f"{name} rotation")
            rotated[r] = Word(*loc, permute_word(self.pl, self.plan, 32, acc[r], m, loc))
        # step k: acc = op(acc, rotated), sent on through the SXM for the next rotation
        for k in range(len(rots)):
            nxt = maps[k + 1] if k + 1 < len(maps) else None
            for r in acc:
                near = set(self.plan.groups[acc[r].gid] + self.plan.groups[rotated[r].gid])
                if nxt is None:
                    acc[r] = self._pair_op(opcode, acc[r], rotated[r], f"{name} partial",
                                           res.loc(r, 0))
                    continue
                loc = self.scratch(32, near, f"{name} partial")
                m = Word(*self.plan.const_word(16, nxt, near | set(self.plan.groups[loc[0]])))
                loc2 = res.loc(r, 0) if k + 1 == len(rots) else self.scratch(
                    32, set(self.plan.groups[loc[0]] + self.plan.groups[m.gid]),
                    f"{name} rotation")
                ready, ready2 = vxm_word(self.pl, self.plan, opcode, 32, 32,
                                         {"a": acc[r], "b": rotated[r]}, loc,
                                         then_permute=(m, loc2))
                acc[r], rotated[r] = Word(*loc, ready), Word(*loc2, ready2)
        for r in acc:
            res.ready[r, 0] = (rotated if spread is not None else acc)[r].ready

    def _butterfly_chain(self, name: str, opcode: Opcode, acc: Word, maps: list,
                         spread: bool, res: Tensor, r: int) -> bool:
        """Row ``r``'s reduction as one rigid chain (:func:`mirrored_chain` where the chip
        allows, else :func:`butterfly_chain`); ``False`` if it does not fit soon enough."""
        plan = self.plan
        side = "w" if plan.groups[acc.gid][0].startswith("mem_w") else "e"
        steps = len(maps) - (1 if spread else 0)
        mine = [g for g in plan.by_width[4] if plan.groups[g][0].startswith(f"mem_{side}")]
        slices = {g: set(plan.groups[g]) for g in mine}
        other_side = {s for g in plan.by_width[4] if g not in slices for s in plan.groups[g]}
        pairs = [set(plan.groups[p]) for p in plan.by_width[2]]

        def map_avoid(gid: int) -> set[str]:
            # A map read with a word of ``gid`` must not share its slices; on the SXM's side
            # if there is room, so that it does not cross the VXM.
            want = set(plan.groups[gid]) | other_side
            return want if any(not want & p for p in pairs) else set(plan.groups[gid])

        try:
            ready = mirrored_chain(
                self.pl, plan, opcode, acc,
                lambda: [Word(*plan.const_word(16, m, map_avoid(acc.gid))) for m in maps],
                res.loc(r, 0), spread, MIRROR_WAIT)
        except LoweringError:
            ready = None
        if ready is not None:
            res.ready[r, 0] = ready
            return True
        # Otherwise the partial results go through SRAM, alternating between the int32
        # groups on the SXM's side (with one group there, they all share it): a step reads
        # the previous one's word and writes its own, so that one group would otherwise take
        # every step's eight accesses; a lane map lies outside the group accessed around its
        # PERMUTE.
        at = mine.index(acc.gid) if acc.gid in slices else 0
        groups = [mine[(at + 1 + k) % len(mine)] for k in range(len(maps))]
        outs = [self.scratch(32, set().union(*(slices[h] for h in mine if h != g)),
                             f"{name} partial", side)
                for g in groups[:steps - (0 if spread else 1)]] + [res.loc(r, 0)]
        touched = [acc.gid] + [o[0] for o in outs[:-1]]
        words = [Word(*plan.const_word(16, m, map_avoid(g)))
                 for m, g in zip(maps, touched, strict=True)]
        try:
            ready = butterfly_chain(self.pl, self.plan, opcode, acc, words, outs, spread,
                                    CHAIN_WAIT)
        except LoweringError:
            return False
        res.ready[r, 0] = ready
        return True

    def permute(self, name: str, x: Tensor, index: np.ndarray) -> Tensor:
        """SXM ``PERMUTE`` along the last axis: ``out[..., l] = x[..., index[l]]``.

        An output word whose elements come from several words of ``x`` is the sum of one
        ``PERMUTE`` per source word, each filling the other lanes with 0 (map entry
        ``0xFFFF``), added with ``ADD`` (exact: every lane has one nonzero term)."""
        self._begin(name)
        L = self.L  # noqa: N806
        lay = x.layout
        src = np.take(lay.mcol, np.asarray(index), axis=-1).reshape(-1)
        mcol, mrow = lay.mcol.reshape(-1), lay.mrow.reshape(-1)
        # (row, out tile) -> {source tile: lane map}; -1 (0xFFFF) gives 0
        maps: dict[tuple[int, int], dict[int, np.ndarray]] = {}
        for r, c, sc in zip(mrow.tolist(), mcol.tolist(), src.tolist(), strict=True):
            m = maps.setdefault((r, c // L), {}).setdefault(sc // L, np.full(L, -1, np.int64))
            m[c % L] = sc % L
        res = self.plan.tensor(name, x.bits, lay, self._slices(x))
        self.pl.op = name
        for (r, j), parts in sorted(maps.items()):
            words = []
            for k, (sj, lane_map) in enumerate(sorted(parts.items())):
                w = self.word(x, r, sj)
                m = Word(*self.plan.const_word(16, lane_map, set(self.plan.groups[w.gid])))
                loc = res.loc(r, j) if len(parts) == 1 else self.scratch(
                    x.bits, set(self.plan.groups[w.gid] + self.plan.groups[m.gid]),
                    f"{name} part {k}")
                words.append(Word(*loc, permute_word(self.pl, self.plan, x.bits, w, m, loc)))
            while len(words) > 2:
                words = [self._pair_op(Opcode.ADD, words[0], words[1], f"{name} sum",
                                       bits=x.bits)] + words[2:]
            if len(words) == 2:
                words = [self._pair_op(Opcode.ADD, words[0], words[1], f"{name} sum",
                                       res.loc(r, j), x.bits)]
            res.ready[r, j] = words[0].ready
        return self._record(name, "PERMUTE", res)

    # --- MXM -------------------------------------------------------------------------------

    def mxm(self, name: str, layout: Layout, blocks: list[MxmBlock],
            out_words: list[list[tuple[int, int]]], macs: int) -> Tensor:
        """``ABC`` blocks whose output row ``i`` of block ``b`` is word ``out_words[b][i]``
        (row, tile) of a new int32 tensor with ``layout``."""
        self._begin(name)
        res = self.plan.tensor(name, 32, layout)
        for blk, words in zip(blocks, out_words, strict=True):
            blk.out = [res.loc(r, j) for r, j in words]
        self.pl.op = name
        run_blocks(self.pl, self.plan, blocks)
        for blk, words in zip(blocks, out_words, strict=True):
            for (r, j), ready in zip(words, blk.ready, strict=True):
                res.ready[r, j] = ready
        return self._record(name, "ABC", res, macs)
