"""The instruction control unit (ICU): one instruction queue and the sequencer that runs it.

Every queue of ``config.queues`` (one per MEM slice, SXM, MXM plane and VXM ALU) gets one
:class:`Icu`. It holds the queue's program in a ``queue_depth`` x 64-bit memory that the host
loads while the chip is idle, and after ``start`` presents the queue's unit instructions to its
slice one per cycle with exactly the timing of the golden model (``sim_models.golden``
``GoldenModel._step``/``run``, ``firmware.timing.issue_times``, docs/architecture.md section 5):
``NOP``, ``REPEAT`` (with its step), ``SYNC``/``NOTIFY`` and ``END`` are executed here and never
reach the unit.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from openlpu.config import ChipConfig
from openlpu.isa import FIELDS, OPS, WORD_BITS, Opcode, Unit

from .instruction import instruction_layout
from .memory_collisions import NO_RW_CHECK

__all__ = ["Icu", "STEP_OPCODES", "ICU_OPCODES"]

#: Opcodes whose ``REPEAT`` repetitions advance a field (``OpSpec.step_field``), from the ISA.
STEP_OPCODES: tuple[Opcode, ...] = tuple(op for op, s in OPS.items() if s.step_field is not None)

#: Opcodes the ICU executes itself (``Unit.ICU`` in the ISA); all others go to the unit.
ICU_OPCODES: tuple[Opcode, ...] = tuple(op for op, s in OPS.items() if s.unit is Unit.ICU)

# What this sequencer implements; the constructor refuses to build if the ISA says otherwise.
_STEP_FIELD = "addr"
_IMPLEMENTED_ICU = {Opcode.END, Opcode.NOP, Opcode.REPEAT, Opcode.SYNC, Opcode.NOTIFY}


def _check_isa() -> None:
    fields = {OPS[op].step_field for op in STEP_OPCODES}
    if fields != {_STEP_FIELD}:
        raise RuntimeError(
            f"the ICU steps only the {_STEP_FIELD!r} field on REPEAT, but openlpu.isa gives "
            f"step fields {sorted(fields)}; update hdl/icu.py")
    if set(ICU_OPCODES) != _IMPLEMENTED_ICU:
        raise RuntimeError(
            f"the ICU implements {sorted(o.name for o in _IMPLEMENTED_ICU)}, but openlpu.isa "
            f"has ICU opcodes {sorted(o.name for o in ICU_OPCODES)}; update hdl/icu.py")
    if Opcode.END.value != 0:
        raise RuntimeError("the ICU relies on END being opcode 0 (a zeroed memory ends)")


class Icu(wiring.Component):
    """One instruction queue: its program memory and its sequencer.

    Parameters
    ----------
    config : ChipConfig
        The chip; the queue has ``config.queue_depth`` 64-bit words.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`~openlpu.config.ChipConfig`.
    RuntimeError
        :mod:`openlpu.isa` has ICU opcodes or REPEAT step fields this sequencer does not
        implement.

    Members
    -------
    wr_en : In(1)
        Host write strobe: ``wr_data`` is stored at ``wr_addr`` at the end of the cycle.
        Ignored while the queue runs and in the ``start`` cycle (host writes only while idle).
    wr_addr : In(range(queue_depth))
        Word index of the write.
    wr_data : In(64)
        The 64-bit instruction word (``openlpu.isa.encode``).
    rd_en : In(1)
        Host read strobe (for the queue memory window, docs section 9.3). Ignored while the
        queue runs, in the ``start`` cycle and in a cycle with ``wr_en`` (the chip's host bus
        never reads and writes in one cycle), so that the memory's ports never collide.
    rd_addr : In(range(queue_depth))
        Word index of the read.
    rd_data : Out(64)
        The word read, in the cycle after ``rd_en``. In every other cycle it is whatever
        the read port holds (while running, the sequencer's prefetched word): the chip top
        passes it to the host only in the cycle after a read it let through, so that the 64
        gates that would zero it are not built once per queue.
    start : In(1)
        One-cycle pulse in cycle -1 of a run: the program counter and all sequencing state
        (not the memory) are reset, word 0 is fetched (and issued, if it is a unit
        instruction) in cycle 0. A ``start`` while running abandons the run; nothing issues in
        the ``start`` cycle and ``ended``/``parked``/``notify`` read 0 in it. Before the first
        ``start`` (and after ``rst``) the queue is idle: it issues nothing, ``ended`` = 0.
    notify_in : In(1)
        The chip-wide notify wire: OR of every queue's ``notify`` (this one's included) in
        this cycle. Releases a queue parked at ``SYNC`` (also in the cycle it parks).
    issue : Out(1)
        A unit instruction issues this cycle.
    instr : Out(instruction_layout())
        The instruction issued (valid while ``issue`` = 1): the word itself, or for a
        ``REPEAT`` repetition the previous issue with its step field (``addr``, for the
        opcodes in :data:`STEP_OPCODES`) advanced by the ``REPEAT``'s step.
    notify : Out(1)
        The queue executes ``NOTIFY`` in this cycle.
    ended : Out(1)
        The queue has executed ``END`` (explicit, or the implicit END at word
        ``queue_depth``) since the last ``start``; 1 combinationally in the cycle ``END`` is
        fetched, then held until the next ``start``.
    parked : Out(1)
        The queue is parked at ``SYNC``: 1 from the cycle ``SYNC`` is fetched up to and
        including the cycle of the ``notify_in`` that releases it (combinational in the
        fetch cycle).
    issued : Out(32)
        Unit instructions issued since the last ``start`` (each ``REPEAT`` repetition
        counted), saturating at ``2**32 - 1``.

    Fetch pipeline
    --------------
    The memory has one synchronous read port, shared with the host (the sequencer owns it
    from ``start`` until ``END``). The word being executed or waited on, ``mem[pc]``, sits in a
    register of its own (``head``), and the port's output register holds the next one,
    ``mem[pc + 1]``: so the decode starts from a flip-flop, not from the block RAM's slow
    clock-to-output time (on an ECP5 that path limited the ICU to 60 MHz). The port's read
    enable is the sequencer's *advance* signal: when the current word is done (a unit
    instruction issues, ``NOP``/``SYNC``/``NOTIFY`` is fetched, the last ``REPEAT`` repetition
    issues), ``head`` takes the port's word, the port reads ``mem[pc + 2]`` and ``pc``
    increments, so the next word is executed in the next cycle with no bubble; otherwise the
    enable is 0 and both hold. In the ``start`` cycle ``head`` takes word 0 from a copy of it
    that host writes to word 0 keep up to date (so ``start`` needs no read cycle before it)
    and the port reads word 1.

    ``NOP n`` and ``SYNC`` advance in their fetch cycle (so the prefetch completes during the
    stall) and then stall in a wait state: a down counter of ``n - 1`` cycles for ``NOP``; the
    ``parked`` register for ``SYNC``, cleared by ``notify_in``, unless ``notify_in`` is
    already high in the fetch cycle. The read enable therefore never depends on ``notify_in``.
    The fetch decision reads flags, not counters: "the NOP wait is not over", "the next
    repetition is due" and "``pc`` is past the last word" are registers of their own, updated
    with the counters (their zero tests were the longest path of a one-lane chip on an ECP5).
    ``REPEAT`` does not advance until its last repetition: the held word supplies ``d`` and
    ``step`` while a down counter spaces the repetitions ``d`` cycles apart and another counts
    the repetitions left; the first repetition issues in the fetch cycle itself when
    ``d = 1``, else ``d - 1`` cycles later (``d`` after the previous issue). Each repetition
    issues the *previous* issue register (the last unit instruction, with its step already
    applied) with ``addr + step``, and stores that back. ``END`` (or ``pc = queue_depth``,
    the implicit END) stops the sequencer.

    Words a valid program cannot contain (``isa.check_queue_program`` rejects them) behave as
    follows: ``NOP 0`` as ``NOP 1``; ``REPEAT`` with ``n = 0`` or ``d = 0`` as ``n = 1`` /
    ``d = 1``; a ``REPEAT`` that does not follow a unit instruction is timed from its own fetch
    cycle as if one had issued just before, and re-issues the last unit instruction since
    ``start`` (if there was none it issues nothing); opcodes the ISA does not define are
    passed to the unit as unit instructions. The ``addr`` step wraps at 16 bits.

    Without ``REPEAT`` (``config.icu_repeat = False``; the assembler and golden model refuse
    it) the repetition counters, the stepped copy of the last issue and its choice are left
    out, and a ``REPEAT`` word is executed as ``NOP 1``.

    Without prefetch (``config.icu_prefetch = False``) there is no ``head`` and no copy of
    word 0: the port's output register holds ``mem[pc]`` itself and is decoded directly. The
    read enable is still *advance*, with address ``pc + 1``; the ``start`` cycle reads word 0.
    The timing is the same; the decode path starts at the block RAM's output.
    """

    def __init__(self, config: ChipConfig):
        if not isinstance(config, ChipConfig):
            raise TypeError(f"config must be a ChipConfig, not {config!r}")
        _check_isa()
        self._config = config
        depth = config.queue_depth
        super().__init__({
            "wr_en": In(1),
            "wr_addr": In(range(depth)),
            "wr_data": In(WORD_BITS),
            "rd_en": In(1),
            "rd_addr": In(range(depth)),
            "rd_data": Out(WORD_BITS),
            "start": In(1),
            "notify_in": In(1),
            "issue": Out(1),
            "instr": Out(instruction_layout()),
            "notify": Out(1),
            "ended": Out(1),
            "parked": Out(1),
            "issued": Out(32),
        })

    @property
    def config(self) -> ChipConfig:
        """The chip config."""
        return self._config

    def elaborate(self, platform):
        m = Module()
        depth = self._config.queue_depth
        has_repeat = self._config.icu_repeat
        prefetch = self._config.icu_prefetch

        # The read and write ports never address a word in the same cycle (the host writes
        # only while idle, and a host read in the cycle of a host write is dropped below):
        # see hdl.memory_collisions
        m.submodules.mem = mem = Memory(shape=unsigned(WORD_BITS), depth=depth, init=[],
                                        attrs=NO_RW_CHECK)
        wr = mem.write_port()
        rd = mem.read_port(domain="sync")

        # --- sequencer state -------------------------------------------------------------
        running = Signal()      # started and END not yet reached: the sequencer owns rd
        ended = Signal()
        parked = Signal()
        pc = Signal(range(depth + 1))       # index of the word in rd.data; depth = implicit END
        at_end = Signal()                   # pc = depth, a flag of its own like nop_busy
        nop_wait = Signal(FIELDS["nop_count"].width)    # stall cycles left after a NOP
        # nop_wait != 0 and rep_wait == 0 as flags of their own, updated with the counters:
        # the fetch decision then starts from a flip-flop instead of a 32-bit zero test (on an
        # ECP5 that test led the longest path of a one-lane chip, into the run control)
        nop_busy = Signal()
        rep_active = Signal()               # between a REPEAT's fetch and its last repetition
        rep_left = Signal(FIELDS["rep_n"].width)        # repetitions still to issue
        rep_wait = Signal(FIELDS["rep_d"].width)        # cycles until the next repetition
        rep_due = Signal(init=1)            # rep_wait = 0
        prev = Signal(instruction_layout())             # the last issue (step applied)
        prev_steps = Signal()               # prev's opcode has a step field
        prev_valid = Signal()               # a unit instruction issued since start
        if prefetch:
            # mem[pc], the word being executed, in a register of its own; rd.data holds
            # mem[pc + 1] (see "Fetch pipeline" in the class docstring)
            head = Signal(WORD_BITS)
            word0 = Signal(WORD_BITS)       # a copy of mem[0], kept by the host's writes
        else:
            head = rd.data                  # mem[pc]

        word = data.View(instruction_layout(), head)      # mem[pc]: the current word
        opv = word.opcode.as_value()

        # --- decode of the current word ----------------------------------------------------
        go = Signal()           # a cycle of a run (not the start cycle)
        fetch = Signal()        # the current word is executed this cycle
        f_end = Signal()
        f_nop = Signal()
        f_rep = Signal()
        f_sync = Signal()
        f_notify = Signal()
        f_unit = Signal()
        r_go = Signal()         # a REPEAT repetition issues this cycle
        r_last = Signal()       # ... and it is the last one
        advance = Signal()      # pc + 1 is read now and executed next cycle
        stepped = Signal(instruction_layout())
        live = Signal()

        m.d.comb += [
            go.eq(running & ~self.start),
            fetch.eq(go & ~parked & ~nop_busy & ~rep_active),
            live.eq(fetch & ~at_end),
            f_end.eq(fetch & (at_end | (word.opcode == Opcode.END))),
            f_nop.eq(live & (word.opcode == Opcode.NOP)),
            f_rep.eq(live & (word.opcode == Opcode.REPEAT)),
            f_sync.eq(live & (word.opcode == Opcode.SYNC)),
            f_notify.eq(live & (word.opcode == Opcode.NOTIFY)),
            f_unit.eq(live & ~opv.matches(*(op.value for op in ICU_OPCODES))),
        ]
        if has_repeat:
            m.d.comb += [
                r_go.eq((f_rep & (word.rep_d <= 1)) | (go & rep_active & rep_due)),
                r_last.eq(r_go & Mux(f_rep, word.rep_n <= 1, rep_left <= 1)),
                advance.eq(f_unit | f_nop | f_sync | f_notify | r_last),
                stepped.eq(prev),
                stepped.addr.eq(prev.addr + Mux(prev_steps, word.rep_step, 0)),
            ]
        else:  # REPEAT as NOP 1: advance in its fetch cycle; r_go, rep_active stay 0
            m.d.comb += advance.eq(f_unit | f_nop | f_sync | f_notify | f_rep)

        # --- outputs ---------------------------------------------------------------------------
        issue = f_unit | (r_go & prev_valid) if has_repeat else f_unit
        m.d.comb += [
            self.issue.eq(issue),
            self.instr.eq(Mux(r_go, stepped.as_value(), head) if has_repeat else head),
            self.notify.eq(f_notify),
            self.ended.eq((ended & ~self.start) | f_end),
            self.parked.eq((parked & ~self.start) | f_sync),
            self.rd_data.eq(rd.data),
        ]

        # --- memory ports ----------------------------------------------------------------------
        idle = ~running & ~self.start
        m.d.comb += [
            wr.en.eq(self.wr_en & idle),
            wr.addr.eq(self.wr_addr),
            wr.data.eq(self.wr_data),
        ]
        if prefetch:
            with m.If(wr.en & (self.wr_addr == 0)):
                m.d.sync += word0.eq(self.wr_data)
        with m.If(self.start):
            m.d.comb += [rd.addr.eq(1 if prefetch else 0), rd.en.eq(1)]
        with m.Elif(running):
            # past the last word the address wraps; pc = depth is the implicit END anyway
            m.d.comb += [rd.addr.eq(pc + (2 if prefetch else 1)), rd.en.eq(advance)]
        with m.Else():
            m.d.comb += [rd.addr.eq(self.rd_addr), rd.en.eq(self.rd_en & ~self.wr_en)]

        # --- sequencer ---------------------------------------------------------------------------
        with m.If(self.start):
            m.d.sync += [
                running.eq(1), ended.eq(0), parked.eq(0), pc.eq(0), at_end.eq(0),
                nop_wait.eq(0), nop_busy.eq(0), self.issued.eq(0),
            ]
            if prefetch:
                m.d.sync += head.eq(word0)
            if has_repeat:
                m.d.sync += [rep_active.eq(0), rep_left.eq(0), rep_wait.eq(0), rep_due.eq(1),
                             prev.eq(0), prev_steps.eq(0), prev_valid.eq(0)]
        with m.Else():
            with m.If(f_end):
                m.d.sync += [running.eq(0), ended.eq(1)]
            with m.If(advance):
                m.d.sync += [pc.eq(pc + 1), at_end.eq(pc == depth - 1)]
                if prefetch:
                    m.d.sync += head.eq(rd.data)

            # NOP n: advance now, stall n - 1 more cycles
            with m.If(f_nop):
                m.d.sync += [nop_wait.eq(Mux(word.nop_count == 0, 0, word.nop_count - 1)),
                             nop_busy.eq(word.nop_count > 1)]
            with m.Elif(nop_busy):
                m.d.sync += [nop_wait.eq(nop_wait - 1), nop_busy.eq(nop_wait != 1)]

            # SYNC: advance now, park unless released in this very cycle
            with m.If(f_sync):
                m.d.sync += parked.eq(~self.notify_in)
            with m.Elif(self.notify_in):
                m.d.sync += parked.eq(0)

            if has_repeat:  # REPEAT n, d: repetitions at (fetch - 1) + k*d, k = 1..n
                with m.If(r_go):
                    with m.If(r_last):
                        m.d.sync += rep_active.eq(0)
                    with m.Else():
                        m.d.sync += [
                            rep_active.eq(1),
                            # subtract before the choice: the carry chain then runs in parallel
                            # with the decode that makes f_rep
                            rep_left.eq(Mux(f_rep, word.rep_n - 1, rep_left - 1)),
                            rep_wait.eq(Mux(word.rep_d <= 1, 0, word.rep_d - 1)),
                            rep_due.eq(word.rep_d <= 1),
                        ]
                with m.Elif(f_rep):
                    m.d.sync += [
                        rep_active.eq(1),
                        rep_left.eq(Mux(word.rep_n == 0, 1, word.rep_n)),
                        rep_wait.eq(word.rep_d - 2),
                        rep_due.eq(word.rep_d == 2),
                    ]
                with m.Elif(go & rep_active):
                    m.d.sync += [rep_wait.eq(rep_wait - 1), rep_due.eq(rep_wait == 1)]

                # the previous issue, for REPEAT
                with m.If(f_unit):
                    m.d.sync += [
                        prev.eq(head),
                        prev_steps.eq(opv.matches(*(op.value for op in STEP_OPCODES))),
                        prev_valid.eq(1),
                    ]
                with m.Elif(r_go):
                    m.d.sync += prev.addr.eq(stepped.addr)

            with m.If(issue & (self.issued != (1 << len(self.issued)) - 1)):
                m.d.sync += self.issued.eq(self.issued + 1)

        return m
