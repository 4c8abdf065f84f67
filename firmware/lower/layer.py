"""Lower a whole integer transformer layer (BERT or Llama) to one OpenLPU program.

:func:`lower_bert_layer` and :func:`lower_llama_layer` replay the layer's forward pass
(:class:`~sim_models.transformer.IntBertLayer`, :class:`~sim_models.transformer.IntLlamaLayer`)
op by op on a :class:`~firmware.lower.graph.LayerGraph`: every tensor the reference records
in its :class:`~sim_models.transformer.Trace` gets SRAM words under the same name, every op
becomes exactly-timed instructions, and the schedule's length is the exact cycle count the
golden model (and the RTL) report. The result, a :class:`LoweredLayer`, binds inputs to the
program and reads the output, the KV cache and every intermediate tensor back from a final
SRAM image.

Llama layers support prefill (``tokens`` positions into an empty cache) and decode steps
(``start = cache length``, usually one token): the KV cache lives at the same SRAM addresses
in every program of one layer and ``capacity``, so the host keeps the SRAM between runs (or
re-binds the cache with :meth:`LoweredLayer.bind`). Words of the cache that no run has written
must be zero (the golden model's SRAM starts at zero; the host writes the whole image).

Programs longer than the instruction queues: when the layer's code does not fit
``config.queue_depth``, the timetable is cut between ops into several programs that the host
runs in turn without clearing the SRAM (:func:`split_points`). At a cut every instruction
before it has completed (no stream value, MXM weight or accumulator entry crosses it), so
each program's cycle count is exact on its own and the layer takes their sum; only the
overlap of the two ops at each cut is lost.

Example (prefill, then one decode step, on the golden model)::

    cache = layer.new_cache()
    ref, trace = layer.forward(x[:8], cache)              # the integer reference
    pre = lower_llama_layer(config, layer, 8)
    runs = pre.run_golden(x[:8])                          # one result per program
    sram = runs[-1].sram
    assert sum(r.cycles for r in runs) == pre.predicted_cycles
    assert pre.compare(trace, sram) is None
    out = pre.read_output(sram)                           # == ref
    kv = pre.read_cache(sram)
    step = lower_llama_layer(config, layer, 1, start=8)
    runs = step.run_golden(x[8:9], kv)
    print(step.report(), step.phase_utilization(), step.op_cycles["attn.scores"])

Phases (:data:`PHASES`) group the ops by trace name: ``norms`` (``ln*``), ``qkv``
(projections, RoPE, the cache append), ``attention`` (``attn.*``), ``out_proj`` (the output
projection and the first residual) and ``ffn``. Ops overlap in time: an op starts as soon as
the words it reads are written, so phases overlap too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware.program import Program
from openlpu.config import MAX_ADDRESS_BITS, ChipConfig
from openlpu.isa import MXM_PRODUCT_OPS, Instruction, Opcode

from .alloc import Tensor
from .blocks import (
    KVCache,
    append_values,
    attention,
    flat_view,
    heads_view,
    linear,
    norm,
    requant,
    rope,
)
from .errors import LoweringError, QueueDepthError, SramCapacityError, queue_depth_for
from .graph import LayerGraph, OpRecord
from .layout import Layout, head_columns

__all__ = ["PHASES", "LoweredLayer", "TensorMismatch", "lower_bert_layer",
           "lower_llama_layer"]

#: The phases of a layer, in the order a layer runs them.
PHASES = ("norms", "qkv", "attention", "out_proj", "ffn")
_QKV = {"x8", "q", "k", "v", "q_rope", "k_rope"}
_OUT_PROJ = {"o", "h1", "h"}


def phase_of(name: str) -> str:
    """The phase (one of :data:`PHASES`) an op belongs to, by its trace name."""
    head = name.split(".")[0]
    if name.startswith("ln"):
        return "norms"
    if name.startswith("attn."):
        return "attention"
    if head in _QKV or name.startswith("rope_"):
        return "qkv"
    if head in _OUT_PROJ:
        return "out_proj"
    return "ffn"


@dataclass(frozen=True)
class TensorMismatch:
    """The first op whose tensor differs from the reference (see :meth:`LoweredLayer.compare`)."""

    name: str
    op: str
    index: tuple[int, ...]
    expected: int
    got: int
    max_error: int
    count: int

    def __str__(self) -> str:
        return (f"{self.name} ({self.op}): {self.count} element(s) differ, first at index "
                f"{list(self.index)}: got {self.got}, expected {self.expected}; max |error| "
                f"{self.max_error}")


@dataclass
class LoweredLayer:
    """A transformer layer lowered to one program, with the figures of its schedule.

    Attributes
    ----------
    programs : list of Program
        The programs without inputs, run in turn with the SRAM kept between them: one, unless
        the layer's code does not fit ``config.queue_depth`` in one (see :func:`split_points`).
        The first carries the SRAM image (weights, constants); :meth:`bind` adds the inputs.
    kind : str
        ``"bert"`` or ``"llama"``.
    tokens, start : int
        Tokens computed and the position of the first (the KV cache length before the run).
    predicted_cycles : int
        The exact cycle count of a run: the sum of ``program_cycles``.
    program_cycles : list of int
        The exact cycle count of each program.
    op_cycles : dict
        Trace name -> ``(first cycle, end cycle)`` of the instructions lowered for that op, on
        the layer's timeline (the programs one after another, each starting where everything
        before it has completed).
    phases : dict
        Phase (one of :data:`PHASES`) -> ``(first cycle, end cycle)`` over its ops (see also
        :meth:`phase_cycles`, :meth:`phase_utilization`).
    macs, phase_macs : int, dict
        Useful multiply-accumulates (the reference's matmul sizes, no padding), in all and per
        phase.
    sram_bytes_used : int
        SRAM bytes the layer's tensors, constants and cache occupy (with SRAM reuse: every
        word that held something at some point, once).
    reuses_sram : bool
        The layer did not fit with every tensor in its own words, so dead tensors' words were
        handed out again (:mod:`firmware.lower.alloc`); their values are gone from the final
        SRAM, and :meth:`differences` reads them from the golden model's write log.
    """

    programs: list[Program]
    config: ChipConfig
    kind: str
    tokens: int
    start: int
    predicted_cycles: int
    program_cycles: list[int]
    op_cycles: dict[str, tuple[int, int]]
    phases: dict[str, tuple[int, int]]
    macs: int
    phase_macs: dict[str, int]
    sram_bytes_used: int
    graph: LayerGraph = field(repr=False)
    output_name: str = field(repr=False, default="")
    cache: KVCache | None = field(repr=False, default=None)
    input_tensor: Tensor | None = field(repr=False, default=None)

    @property
    def reuses_sram(self) -> bool:
        """Whether the lowering handed out the words of dead tensors again."""
        return self.graph.plan.reuse

    def released(self, name: str) -> bool:
        """Whether the words of recorded tensor ``name`` were handed out again before the end
        of the run (it cannot be read from the final SRAM)."""
        return self.graph.records[name].tensor.key in self.graph.released

    # --- figures ---------------------------------------------------------------------------

    @property
    def mxm_utilization(self) -> float:
        """Useful MACs / (predicted cycles x ``config.macs_per_cycle``)."""
        return self.macs / (self.predicted_cycles * self.config.macs_per_cycle)

    @property
    def issued_macs(self) -> int:
        """MACs the MXM planes perform, padding and transpositions included (``ABC`` and
        ``ABCO`` count x ``L * L``): the golden model's ``counters["macs"]``."""
        abc = sum(1 for _, _, i in self.graph.pl.builder.placed() if i.op in MXM_PRODUCT_OPS)
        return abc * self.config.lanes ** 2

    def phase_cycles(self) -> dict[str, int]:
        """Per phase: cycles in which at least one of its ops is active (the union of its
        ops' ranges; phases overlap, so these add up to more than the layer's cycles)."""
        out = {}
        for ph in self.phases:
            spans = sorted(c for n, c in self.op_cycles.items() if phase_of(n) == ph)
            total, end = 0, -1
            for lo, hi in spans:
                total += max(0, hi - max(lo, end))
                end = max(end, hi)
            out[ph] = total
        return out

    def phase_utilization(self) -> dict[str, float]:
        """Per phase: useful MACs / (:meth:`phase_cycles` x ``macs_per_cycle``)."""
        cycles = self.phase_cycles()
        return {ph: self.phase_macs.get(ph, 0) / (max(1, cycles[ph])
                                                   * self.config.macs_per_cycle)
                for ph in self.phases}

    def matmul_utilization(self) -> dict[str, float]:
        """Per matmul op (trace name of its ``ABC``, e.g. ``"q.acc"``): useful MACs / (cycles
        from its first ``ABC``/``ABCO`` to its last MXM instruction x ``macs_per_cycle``), i.e. how
        busy the planes are once its inputs arrive (the weight loads before the first ``ABC``
        are prefetch, the ops around it are not counted); ``"all"``: the same over every
        matmul op, their cycle counts added."""
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        for q, c, i in self.graph.pl.builder.placed():
            op = self.graph.pl.owner.get((q, c))
            if q.startswith("mxm") and op is not None:
                if i.op in MXM_PRODUCT_OPS:
                    first[op] = min(first.get(op, c), c)
                last[op] = max(last.get(op, c), c)
        peak = self.config.macs_per_cycle
        recs = [r for r in self.graph.records.values() if r.macs and r.name in first]
        out = {r.name: r.macs / ((last[r.name] - first[r.name] + 1) * peak) for r in recs}
        span = sum(last[r.name] - first[r.name] + 1 for r in recs)
        out["all"] = sum(r.macs for r in recs) / (max(1, span) * peak)
        return out

    def ops(self) -> list[dict]:
        """Every lowered op in program order: ``name`` (the trace name), ``kind`` (the
        instruction it stands for, as the trace records it: ``"ABC"``, ``"REQ.i8"``, ..),
        ``phase``, ``start`` / ``end`` cycles and useful ``macs``. Untraced helper ops (the
        value-cache transposition ``v.t``, ``v.cache``) are included."""
        out = []
        for rec in self.graph.records.values():
            lo, hi = self.op_cycles.get(rec.name, (0, 0))
            out.append({"name": rec.name, "kind": rec.kind, "phase": phase_of(rec.name),
                        "start": lo, "end": hi, "macs": rec.macs})
        return out

    def instructions(self) -> list[tuple[str, int, Instruction, str]]:
        """Every unit instruction of the program as ``(queue, issue cycle, instruction, op)``
        in cycle order, ``op`` being the trace name it was placed for (a timeline, e.g. for
        a Chrome trace)."""
        pl = self.graph.pl
        return [(q, c, i, pl.owner.get((q, c), "?")) for q, c, i in pl.builder.placed()]

    def report(self) -> dict:
        """The schedule's figures as a dict."""
        return {
            "config": self.config.name, "kind": self.kind, "tokens": self.tokens,
            "start": self.start, "predicted_cycles": self.predicted_cycles,
            "macs": self.macs, "mxm_utilization": self.mxm_utilization,
            "phases": {p: {"span": c, "active_cycles": self.phase_cycles()[p],
                           "macs": self.phase_macs.get(p, 0),
                           "mxm_utilization": self.phase_utilization()[p]}
                       for p, c in self.phases.items()},
            "sram_bytes_used": self.sram_bytes_used,
            "programs": len(self.programs),
            "program_cycles": list(self.program_cycles),
            "queue_words": max(len(q) for p in self.programs for q in p.queues.values()),
        }

    # --- inputs and outputs ----------------------------------------------------------------

    def bind(self, x, cache=None) -> list[Program]:
        """The programs with the input ``x`` (int32 ``[tokens, hidden]``) and, for a decode
        step, the KV cache's first ``start`` positions (``(k, v)``, int8
        ``[kv_heads, >= start, head_dim]``, e.g. ``IntKVCache.k``/``.v`` or
        :meth:`read_cache`) in the first program's SRAM image."""
        plan = self.graph.plan
        first = self.programs[0]
        inits = list(first.mem_init) + plan.bind(self.input_tensor, x)
        if self.start:
            if cache is None:
                raise LoweringError(f"this program continues a KV cache of {self.start} "
                                    f"positions: pass cache=(k, v)")
            k, v = (np.asarray(a)[:, :self.start] for a in cache)
            inits += plan.bind(self.cache.k_rows("k", 0, self.start), k)
            inits += plan.bind(self.cache.v_cols("v", 0, self.start),
                               v.transpose(1, 0, 2).reshape(self.start, -1))
        p = first
        return [Program(p.config_name, p.config_hash, p.lanes, p.queues, inits, p.outputs,
                        p.source), *self.programs[1:]]

    def run_golden(self, x, cache=None, **kwargs) -> list:
        """Run the programs bound to ``x`` and ``cache`` (:meth:`bind`) on the golden model:
        :meth:`run_bound`."""
        return self.run_bound(self.bind(x, cache), **kwargs)

    def run_bound(self, programs: list[Program], *, log_writes: bool | None = None,
                  **kwargs) -> list:
        """Run bound ``programs`` on the golden model in turn, each starting from the SRAM the
        previous one left (as a host that does not clear the SRAM between them); returns
        each program's :class:`~sim_models.golden.RunResult` (the last one's ``sram`` is the
        layer's final SRAM). ``log_writes`` (default: when the layer reuses SRAM) keeps every
        ``WRITE`` in the results, which :meth:`differences` needs for released tensors.
        Other keyword arguments go to the golden model."""
        from sim_models.golden import run_program

        if log_writes is None:
            log_writes = self.reuses_sram
        out = []
        for prog in programs:
            log = [] if log_writes else None
            out.append(run_program(self.config, prog, sram=out[-1].sram if out else None,
                                   write_log=log, **kwargs))
        return out

    def read(self, name: str, sram: np.ndarray) -> np.ndarray:
        """Tensor ``name`` (a trace name) from a final SRAM image, in the reference's shape.

        Raises
        ------
        LoweringError
            Its words were handed out again (see :meth:`differences` for reading it)."""
        if self.released(name):
            raise LoweringError(f"tensor {name} is not in the final SRAM: the layer reuses "
                                f"SRAM and its words went to later tensors")
        return self.graph.plan.read(self.graph.records[name].tensor, sram)

    def read_output(self, sram: np.ndarray) -> np.ndarray:
        """The layer's int32 output ``[tokens, hidden]`` (BERT: the wide output)."""
        return self.read(self.output_name, sram)

    def read_tensors(self, sram: np.ndarray) -> dict[str, np.ndarray]:
        """Every recorded tensor still in the final SRAM, by trace name."""
        return {n: self.read(n, sram) for n in self.graph.records if not self.released(n)}

    def read_cache(self, sram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The KV cache after the run, int8 ``[kv_heads, start + tokens, head_dim]`` each."""
        n = self.start + self.tokens
        plan = self.graph.plan
        k = plan.read(self.cache.k_rows("k", 0, n), sram)
        v = plan.read(self.cache.v_cols("v", 0, n), sram)
        v = v.reshape(n, self.cache.kv_heads, self.cache.dh).transpose(1, 0, 2)
        return k.astype(np.int8), v.astype(np.int8)

    def compare(self, trace, sram: np.ndarray, runs: list | None = None
                ) -> TensorMismatch | None:
        """The first op (in the reference's order) whose tensor in ``sram`` differs from the
        reference ``trace``, or ``None`` when every recorded tensor matches bit for bit.

        Raises
        ------
        LoweringError
            A tensor of ``trace`` was not lowered, or has another shape."""
        diffs = self.differences(trace, sram, first_only=True, runs=runs)
        return diffs[0] if diffs else None

    def differences(self, trace, sram: np.ndarray, *, first_only: bool = False,
                    runs: list | None = None) -> list[TensorMismatch]:
        """Every op (in the reference's order) whose tensor in ``sram`` differs from the
        reference ``trace``: where the first difference is and the largest error, op by op.
        A tensor whose words were handed out again (:attr:`reuses_sram`) is read from the
        write logs of ``runs`` (:meth:`run_bound`) as it stood when it was complete; without
        them it is not compared. Raises as :meth:`compare`."""
        missing = [n for n in trace.names() if n not in self.graph.records]
        if missing:
            raise LoweringError(f"the lowered layer has no tensor for {', '.join(missing)}")
        history = _WriteHistory(self, runs) if runs and self.graph.released else None
        out = []
        for name in trace.names():
            want = trace[name]
            if self.released(name):
                if history is None:
                    continue
                got = history.read(self.graph.records[name].tensor)
            else:
                got = self.read(name, sram)
            if got.shape != want.shape:
                raise LoweringError(f"{name}: lowered shape {got.shape}, reference "
                                    f"{want.shape}")
            bad = np.argwhere(got != want)
            if len(bad):
                i = tuple(int(v) for v in bad[0])
                err = np.abs(got.astype(np.int64) - want.astype(np.int64))
                out.append(TensorMismatch(name, trace.op(name), i, int(want[i]), int(got[i]),
                                          int(err.max()), len(bad)))
                if first_only:
                    break
        return out


class _WriteHistory:
    """What each SRAM word held over a logged run of a layer's programs (the golden model's
    ``write_log``), to read tensors whose words were reused later."""

    def __init__(self, lowered: LoweredLayer, runs: list):
        if any(r.write_log is None for r in runs):
            raise LoweringError("the layer reuses SRAM: run it with log_writes=True to "
                                "compare its released tensors")
        cfg = lowered.config
        self.plan = lowered.graph.plan
        self.index = {s.name: s.index for s in cfg.mem_slice_list}
        starts = [lo for lo, _ in lowered.graph.pl.segments()]
        #: (slice index, address) -> ([global issue cycles], [words]) in time order
        self.words: dict[tuple[int, int], tuple[list[int], list[np.ndarray]]] = {}
        for start, run in zip(starts, runs, strict=True):
            for t, si, addr, word in run.write_log:
                cycles, values = self.words.setdefault((si, addr), ([], []))
                cycles.append(start + t)
                values.append(word)
        self.image = runs[0].sram_start.reshape(cfg.mem_slices, -1, cfg.lanes).copy()
        self.start = self.image.copy()

    def read(self, t: Tensor) -> np.ndarray:
        """Tensor ``t`` as it stood in the cycles its words became readable (``t.ready``)."""
        import bisect

        for r, j in zip(*np.nonzero(t.gid >= 0), strict=True):
            addr, ready = int(t.addr[r, j]), int(t.ready[r, j])
            for s in self.plan.groups[int(t.gid[r, j])]:
                si = self.index[s]
                cycles, values = self.words.get((si, addr), ((), ()))
                k = bisect.bisect_left(cycles, ready)
                self.image[si, addr] = values[k - 1] if k else self.start[si, addr]
        return self.plan.read(t, self.image)


def _segment_queues(g: LayerGraph) -> list[dict[str, list[Instruction]]]:
    """Each program's queue code (the timetable cut at ``g.pl.cuts``)."""
    return [g.pl.builder.window(lo, hi).queues() for lo, hi in g.pl.segments()]


def _overflow(config: ChipConfig, segments) -> tuple[int, str, int] | None:
    """``(program, queue, words)`` of the longest queue over the depth, or None."""
    worst = None
    for k, queues in enumerate(segments):
        for q, code in queues.items():
            if len(code) > config.queue_depth and (worst is None or len(code) > worst[2]):
                worst = (k, q, len(code))
    return worst


def _op_words(g: LayerGraph) -> dict[str, dict[str, int]]:
    """Per op, per queue: the instruction words the op's own instructions take (its part of
    the code, estimated on its own)."""
    timelines: dict[str, dict[str, list]] = {}
    for q, c, instr in g.pl.builder.placed():
        op = g.pl.owner.get((q, c), "?")
        timelines.setdefault(op, {}).setdefault(q, []).append((c, instr))
    return {op: {q: g.pl.builder.code_words(tl) for q, tl in per_q.items()}
            for op, per_q in timelines.items()}


def split_points(order: list[str], words: dict[str, dict[str, int]], budget: int,
                 config: ChipConfig) -> list[str]:
    """The ops before which a new program starts so that no queue of a program takes more
    than ``budget`` words by the per-op estimates ``words``, greedily (as late as possible).

    An op that alone needs more than ``budget`` words (but fits a queue) gets a program of
    its own.

    Raises
    ------
    QueueDepthError
        An op alone needs more words on a queue than it holds (an op is never split); it
        names the op that needs the most.
    """
    # The op that needs the most words is named, so that its depth is enough for every op.
    n, op, q = max(((n, op, q) for op in order for q, n in words.get(op, {}).items()),
                   key=lambda t: t[0], default=(0, "", ""))
    if n > config.queue_depth - 1:
        raise QueueDepthError(
            f"op {op} alone needs about {n} instruction words on queue {q} (and the END); "
            f"config {config.name!r} holds {config.queue_depth} per queue: it needs "
            f"queue_depth {queue_depth_for(n + 1)} or more, or fewer tokens per program",
            q, n + 1, config.queue_depth)
    cuts: list[str] = []
    used: dict[str, int] = {}
    for op in order:
        need = words.get(op, {})
        if used and any(used.get(q, 0) + n > budget for q, n in need.items()):
            cuts.append(op)
            used = {}
        for q, n in need.items():
            used[q] = used.get(q, 0) + n
    return cuts


#: Fractions of the queue depth the greedy split aims for, tried in turn: per-op estimates
#: ignore how ops share NOPs and REPEATs once interleaved, so a split is checked and redone
#: tighter when a program still overflows.
_SPLIT_BUDGETS = (0.9, 0.75, 0.6, 0.45, 0.3)


def _attempt(config: ChipConfig, body, cuts: frozenset[str] = frozenset(),
             live: dict[tuple, int] | None = None):
    """Lower ``body`` with new programs before the ops in ``cuts`` (reusing SRAM by the last
    uses ``live``, if given): ``(graph, body's result, each program's queues, the worst
    overflow or None)``."""
    g = LayerGraph(config, cuts, live)
    out = body(g)
    g.flush()
    segments = _segment_queues(g)
    return g, out, segments, _overflow(config, segments)


#: The largest bank a liveness pass may pretend to have (the address field's limit).
_LIVENESS_WORDS = 1 << (MAX_ADDRESS_BITS - 1)


def _liveness(config: ChipConfig, body, full: SramCapacityError):
    """Lower ``body`` once on ``config`` with as many words per bank as an address can name,
    for what it reads when (:attr:`LayerGraph.last_use`): the first pass of a layer that only
    fits with SRAM reuse. Re-raises ``full`` if even that does not hold it."""
    big = config.replace(mem_words_per_bank=max(config.mem_words_per_bank, _LIVENESS_WORDS))
    try:
        return _attempt(big, body)
    except SramCapacityError:
        raise full from None


def _lower(config: ChipConfig, kind: str, tokens: int, start: int, body,
           sram_reuse: bool | None = None) -> LoweredLayer:
    """Lower ``body(graph) -> (output name, input tensor, cache)`` to one program or, when its
    code does not fit the queues, to several programs cut between ops. ``sram_reuse``: None
    reuses the words of dead tensors only when the layer does not fit the SRAM otherwise (a
    first pass on a chip with bigger banks finds every tensor's last reader), True always,
    False never."""
    live = None
    try:
        g, out, segments, worst = _attempt(config, body)
    except SramCapacityError as full:
        if sram_reuse is False:
            raise
        g, out, segments, worst = _liveness(config, body, full)
        live = dict(g.last_use)
    if sram_reuse and live is None:
        live = dict(g.last_use)
    if live is not None and worst is None:
        g, out, segments, worst = _attempt(config, body, live=live)
    words = _op_words(g) if worst is not None else {}
    order = g.op_order
    fracs = iter(_SPLIT_BUDGETS)
    while worst is not None and (frac := next(fracs, None)) is not None:
        budget = int((config.queue_depth - 1) * frac)
        g, out, segments, worst = _attempt(
            config, body, frozenset(split_points(order, words, budget, config)), live)
    if worst is None:
        return _finish(g, kind, tokens, start, segments, *out)
    k, q, n = worst
    raise QueueDepthError(
        f"{kind} layer ({tokens} tokens) on config {config.name!r}: program {k} of "
        f"{len(segments)} still needs {n} instruction words on queue {q} with its END, the "
        f"queues hold {config.queue_depth}: it needs queue_depth {queue_depth_for(n)} or more, "
        f"or fewer tokens per program", q, n, config.queue_depth)


def _finish(g: LayerGraph, kind: str, tokens: int, start: int, segments: list,
            out_name: str, x: Tensor, cache: KVCache | None) -> LoweredLayer:
    cfg = g.config
    programs = [Program(cfg.name, cfg.config_hash, cfg.lanes, queues,
                        list(g.plan.inits) if k == 0 else [], [], {})
                for k, queues in enumerate(segments)]
    cycles = [g.pl.builder.window(lo, hi).predicted_cycles() for lo, hi in g.pl.segments()]
    op_cycles = {n: tuple(c) for n, c in g.pl.op_cycles.items()}
    phases: dict[str, list[int]] = {}
    macs: dict[str, int] = {}
    for name, (lo, hi) in op_cycles.items():
        ph = phase_of(name)
        rng = phases.setdefault(ph, [lo, hi])
        rng[0], rng[1] = min(rng[0], lo), max(rng[1], hi)
    rec: OpRecord
    for rec in g.records.values():
        macs[phase_of(rec.name)] = macs.get(phase_of(rec.name), 0) + rec.macs
    return LoweredLayer(programs, cfg, kind, tokens, start, sum(cycles), cycles, op_cycles,
                        {p: tuple(r) for p, r in phases.items()}, sum(macs.values()), macs,
                        g.plan.bytes_used, g, out_name, cache, x)


def lower_bert_layer(config: ChipConfig, layer, tokens: int, *,
                     sram_reuse: bool | None = None) -> LoweredLayer:
    """Lower ``layer.forward`` (an :class:`~sim_models.transformer.IntBertLayer`) for
    ``tokens`` tokens (bidirectional attention; the keys and values stay in SRAM).
    ``sram_reuse``: hand out the words of dead tensors again - ``None`` (default) only when
    the layer does not fit otherwise, ``True`` always, ``False`` never (see
    :attr:`LoweredLayer.reuses_sram`).

    Raises
    ------
    SramCapacityError
        The weights, activations and cache do not fit (bytes needed and available).
    QueueDepthError
        The code does not fit ``config.queue_depth`` even cut into several programs (one op
        alone needs more words on a queue than it holds).
    LoweringError
        Anything else the chip cannot do (see the message).
    """
    return _lower(config, "bert", tokens, 0, lambda g: _bert_body(g, layer, tokens),
                  sram_reuse)


def _bert_body(g: LayerGraph, layer, tokens: int):
    c = layer.config
    L = g.L  # noqa: N806
    nh, dh, hid = c.num_heads, c.head_dim, c.hidden_size
    hc = head_columns(nh, dh, L)
    cache = KVCache.allocate(g, nh, dh, tokens)
    x = g.input("x", 32, Layout.plain((tokens, hid), L))
    x8 = requant(g, "x8", x, layer.x_in)
    q = requant(g, "q", linear(g, "q", x8, layer.q.weight, hc, layer.q.bias), layer.q_out)
    requant(g, "k", linear(g, "k", x8, layer.k.weight, hc, layer.k.bias), layer.k_out,
            out=flat_view(cache.k_rows("k", 0, tokens), "k"))
    v = requant(g, "v", linear(g, "v", x8, layer.v.weight, hc, layer.v.bias), layer.v_out)
    append_values(g, v, cache, 0)
    ctx = attention(g, "attn.", heads_view(q, "q.heads", nh, dh), cache, tokens,
                    np.arange(tokens), layer.attn, causal=False)
    o = linear(g, "o", ctx, layer.o.weight, None, layer.o.bias)
    h1 = g.vxm("h1", Opcode.ADDS, 32, requant(g, "h1.attn", o, layer.o_res),
               requant(g, "h1.x", x, layer.x_res))
    y1, y1_wide = norm(g, "ln1.", h1, layer.ln1)
    f = linear(g, "ffn_in", y1, layer.ffn_in.weight, None, layer.ffn_in.bias)
    f = requant(g, "ffn_in.q16", f, layer.ffn_q16)
    a = requant(g, "ffn.act", g.vxm("ffn.gelu", Opcode.GELU, 32, f), layer.ffn_act)
    f2 = linear(g, "ffn_out", a, layer.ffn_out.weight, None, layer.ffn_out.bias)
    h2 = g.vxm("h2", Opcode.ADDS, 32, requant(g, "h2.ffn", f2, layer.ffn_res),
               requant(g, "h2.y", y1_wide, layer.y1_res))
    norm(g, "ln2.", h2, layer.ln2)
    return "ln2.beta", x, cache


def lower_llama_layer(config: ChipConfig, layer, tokens: int, start: int = 0,
                      capacity: int | None = None, *,
                      sram_reuse: bool | None = None) -> LoweredLayer:
    """Lower ``layer.forward`` (an :class:`~sim_models.transformer.IntLlamaLayer`) for
    ``tokens`` tokens at positions ``start ..`` (prefill: ``start = 0``; a decode step:
    ``tokens = 1``, ``start`` = the cache length), causal attention over a KV cache of
    ``capacity`` positions (default ``layer.max_positions``) resident in SRAM.

    Raises as :func:`lower_bert_layer`.
    """
    cap = layer.max_positions if capacity is None else capacity
    if start + tokens > cap:
        raise LoweringError(f"positions {start}..{start + tokens - 1} exceed the KV cache "
                            f"capacity {cap}")
    return _lower(config, "llama", tokens, start,
                  lambda g: _llama_body(g, layer, tokens, start, cap), sram_reuse)


def _llama_body(g: LayerGraph, layer, tokens: int, start: int, cap: int):
    c = layer.config
    L = g.L  # noqa: N806
    nh, nkv, dh, hid = c.num_heads, c.num_kv_heads, c.head_dim, c.hidden_size
    cache = KVCache.allocate(g, nkv, dh, cap)
    x = g.input("x", 32, Layout.plain((tokens, hid), L))
    pos = np.arange(start, start + tokens)
    xn, _ = norm(g, "ln_attn.", x, layer.ln_attn)
    q = requant(g, "q", linear(g, "q", xn, layer.q.weight, head_columns(nh, dh, L)),
                layer.q_out)
    k = requant(g, "k", linear(g, "k", xn, layer.k.weight, head_columns(nkv, dh, L)),
                layer.k_out)
    v = requant(g, "v", linear(g, "v", xn, layer.v.weight, head_columns(nkv, dh, L)),
                layer.v_out)
    qr = rope(g, "rope_q.", heads_view(q, "q.heads", nh, dh), pos, layer.rope)
    qr = requant(g, "q_rope", qr, layer.q_rope)
    kr = rope(g, "rope_k.", heads_view(k, "k.heads", nkv, dh), pos, layer.rope)
    requant(g, "k_rope", kr, layer.k_rope, out=cache.k_rows("k_rope", start, tokens))
    # placed after RoPE, which the scores wait for: the ops are placed in this order, and the
    # value-cache append (needed only by P @ V) then takes the cycles RoPE leaves free
    append_values(g, v, cache, start)
    ctx = attention(g, "attn.", qr, cache, start + tokens, pos, layer.attn, causal=True)
    o = linear(g, "o", ctx, layer.o.weight)
    h = g.vxm("h", Opcode.ADDS, 32, requant(g, "h.attn", o, layer.o_res),
              requant(g, "h.x", x, layer.x_res))
    hn, _ = norm(g, "ln_ffn.", h, layer.ln_ffn)
    gate = linear(g, "gate", hn, layer.gate.weight)
    up = linear(g, "up", hn, layer.up.weight)
    gs = g.vxm("ffn.silu", Opcode.SILU, 32, requant(g, "gate.q16", gate, layer.gate_q16))
    u = requant(g, "up.scaled", up, layer.up_scaled)
    a = g.vxm("ffn.act", Opcode.REQ, 8, gs, u, shift=layer.act_shift)
    d = linear(g, "down", a, layer.down.weight)
    g.vxm("out", Opcode.ADDS, 32, requant(g, "out.ffn", d, layer.down_res),
          requant(g, "out.h", h, layer.h_res))
    return "out", x, cache
