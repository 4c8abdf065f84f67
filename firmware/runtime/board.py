"""The host runtime's board API: identify, load, run, read back, compare with the golden model.

:class:`Board` drives a board (or a simulated one) over a
:class:`~firmware.runtime.transport.Transport`. The program-level sequences are the
testbenches' own: loading queues and SRAM, reading counters and SRAM words are
:class:`tb.host.HostBus`'s methods, run on a bus made of link bursts, and
:meth:`Board.run_program` compares with the golden model through :mod:`tb.scoreboard`, exactly as
the RTL simulations do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from firmware.program import Program
from openlpu.config import PRESETS, ChipConfig
from openlpu.hostmap import (
    CTRL_CLEAR,
    CTRL_START,
    ID,
    REG,
    SRAM_BASE,
    STATUS_DEADLOCK,
    STATUS_DONE,
    HostMap,
)
from openlpu.link import PROTOCOL_VERSION
from tb.host import HostBus

from .errors import ConfigMismatch, ProtocolError, RunError
from .link import Link
from .transport import Transport

__all__ = ["Board", "Identity", "BoardResult"]

#: Identification registers compared with the expected config (as :meth:`HostBus.check_identity`
#: does), in the order they are reported.
IDENT_REGISTERS = ("ID", "VERSION", "CONFIG_HASH", "CONFIG0", "CONFIG1", "CONFIG2", "NCOUNTERS")
_MUST_MATCH = ("ID", "CONFIG_HASH", "CONFIG0", "CONFIG1", "CONFIG2", "NCOUNTERS")


def _complete(coro):
    """Run a :class:`HostBus` coroutine whose bus calls are synchronous link transfers: it never
    suspends, so it finishes on its first step."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a host-bus sequence tried to wait for the simulator")


class _LinkBus:
    """:class:`tb.host.HostBus`'s program-level sequences over the link: they only need
    ``config``, ``map``, ``write_many`` and ``read_many``, which become link bursts here."""

    def __init__(self, link: Link, config: ChipConfig):
        self.link, self.config, self.map = link, config, HostMap(config)

    async def write_many(self, pairs) -> None:
        self.link.write_pairs(pairs)

    async def read_many(self, addrs) -> list[int]:
        return self.link.read_addrs(addrs)

    load = HostBus.load
    clear_words = HostBus.clear_words
    read_counters = HostBus.read_counters
    read_words = HostBus.read_words


def preset_for_hash(config_hash: str) -> str | None:
    """The name of the preset whose config hash is ``config_hash``, if any."""
    for name, cfg in PRESETS.items():
        if cfg.config_hash == config_hash:
            return name
    return None


@dataclass
class Identity:
    """What a board says it is."""

    protocol_version: int
    clocks_per_bit: int
    registers: dict[str, int]

    @property
    def config_hash(self) -> str:
        """The chip's config hash, as 8 hex digits."""
        return f"{self.registers['CONFIG_HASH']:08x}"

    @property
    def version(self) -> str:
        """The ``openlpu`` version the RTL was generated from."""
        v = self.registers["VERSION"]
        return f"{v >> 16 & 0xFF}.{v >> 8 & 0xFF}.{v & 0xFF}"

    @property
    def preset(self) -> str | None:
        """The preset with this config hash, if any."""
        return preset_for_hash(self.config_hash)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"protocol_version": self.protocol_version, "clocks_per_bit": self.clocks_per_bit,
                "config_hash": self.config_hash, "preset": self.preset, "version": self.version,
                "registers": {k: f"{v:#010x}" for k, v in self.registers.items()}}


@dataclass
class BoardResult:
    """One program run on the board, compared with the golden model."""

    config: str
    cycles: int
    golden_cycles: int
    matches: bool
    mismatch: str | None
    outputs: dict[str, np.ndarray]
    counters: dict[str, dict[str, int]]
    seconds: dict[str, float]
    bytes_sent: int
    bytes_received: int
    verified: object = field(repr=False, default=None)  # tb.verify.Verified

    def to_dict(self) -> dict:
        """JSON-ready form (outputs as nested lists)."""
        return {"config": self.config, "cycles": self.cycles,
                "golden_cycles": self.golden_cycles, "matches_golden": self.matches,
                "mismatch": self.mismatch,
                "outputs": {k: v.tolist() for k, v in self.outputs.items()},
                "counters": self.counters, "seconds": self.seconds,
                "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received}


class Board:
    """An OpenLPU board behind a link transport.

    Parameters
    ----------
    transport : Transport
        The byte pipe (:class:`~firmware.runtime.transport.SerialTransport`, or a simulation
        transport from :mod:`firmware.runtime.sim`).
    config : ChipConfig
        The config the board is expected to run; :meth:`identify` refuses any other.
    retries, max_burst : int
        See :class:`~firmware.runtime.link.Link`.
    """

    def __init__(self, transport: Transport, config: ChipConfig, *, retries: int = 2,
                 max_burst: int = 1024):
        if not isinstance(config, ChipConfig):
            raise TypeError(f"config must be a ChipConfig, not {config!r}")
        self.transport = transport
        self.config = config
        self.map = HostMap(config)
        self.link = Link(transport, retries=retries, max_burst=max_burst)
        self._bus = _LinkBus(self.link, config)
        self._identity: Identity | None = None

    # --- identification ----------------------------------------------------------------------

    def identify(self, check: bool = True) -> Identity:
        """Ask the board what it is and (with ``check``) that it is the expected config.

        Raises
        ------
        ConfigMismatch
            Not an OpenLPU chip, or another config (the message names both and the preset the
            board's hash belongs to).
        ProtocolError
            The bridge speaks another protocol version.
        """
        info, chip_id, _version, _hash = self.link.ping()
        if info & 0xFF != PROTOCOL_VERSION:
            raise ProtocolError(f"{self.transport.name}: the board's bridge speaks link protocol "
                                f"version {info & 0xFF}, this runtime version "
                                f"{PROTOCOL_VERSION}: rebuild the bitstream or update openlpu")
        if chip_id != ID:
            raise ConfigMismatch(f"{self.transport.name}: not an OpenLPU chip: its ID register "
                                 f"reads {chip_id:#010x}, expected {ID:#010x} ('OLPU')")
        values = self.link.read_addrs([REG[n] for n in IDENT_REGISTERS])
        ident = Identity(info & 0xFF, info >> 8, dict(zip(IDENT_REGISTERS, values, strict=True)))
        want = self.map.config_words
        wrong = [n for n in _MUST_MATCH if ident.registers[n] != want[n]]
        if wrong and not check:
            return ident
        if wrong:
            theirs = ident.preset
            raise ConfigMismatch(
                f"{self.transport.name}: the board runs config hash {ident.config_hash}"
                + (f" (preset {theirs!r})" if theirs else " (not a preset)")
                + f", not config {self.config.name!r} (hash {self.config.config_hash}); "
                f"differing registers: " + ", ".join(
                    f"{n} {ident.registers[n]:#010x} != {want[n]:#010x}" for n in wrong)
                + (f"; use --config {theirs} or " if theirs else "; ")
                + f"build the bitstream with --config {self.config.name}")
        self._identity = ident
        return ident

    @property
    def identity(self) -> Identity:
        """The identity found by :meth:`identify` (which is called on first use)."""
        if self._identity is None:
            self.identify()
        return self._identity

    # --- bus access --------------------------------------------------------------------------

    def read(self, addr: int, count: int = 1) -> list[int]:
        """``count`` 32-bit words from bus address ``addr`` on."""
        return self.link.read(addr, count)

    def write(self, addr: int, words) -> None:
        """32-bit words to bus address ``addr`` on."""
        self.link.write(addr, words)

    # --- program ---------------------------------------------------------------------------

    def load(self, program: Program, *, clear: bool = True) -> None:
        """Write the program's queues and SRAM image; with ``clear`` (the default), zero the
        whole SRAM first, so the chip starts from the state the golden model assumes.

        Raises
        ------
        ConfigMismatch
            The program was assembled for another config, or the board runs another one.
        """
        if program.config_hash != self.config.config_hash:
            raise ConfigMismatch(
                f"the program was assembled for config {program.config_name!r} (hash "
                f"{program.config_hash}), not {self.config.name!r} (hash "
                f"{self.config.config_hash})")
        self.identity  # noqa: B018 - refuse another board before writing anything
        if clear:
            self.link.fill(SRAM_BASE, self.map.sram_window_bytes // 4, 0)
        _complete(self._bus.load(program))

    def start(self) -> None:
        """Clear the cycle counter and performance counters and start a run."""
        self.link.write(REG["CTRL"], [CTRL_CLEAR | CTRL_START])

    def run(self, timeout: float = 10.0) -> int:
        """Start a run, poll until it is done and return its cycle count.

        Raises
        ------
        RunError
            The chip reports DEADLOCK, or is still busy after ``timeout`` seconds.
        """
        self.start()
        deadline = self.transport.now() + timeout
        while True:
            status, lo, hi = self.link.read(REG["STATUS"], 3)  # STATUS, CYCLES_LO, CYCLES_HI
            if status & STATUS_DONE:
                return hi << 32 | lo
            if status & STATUS_DEADLOCK:
                raise RunError(f"{self.transport.name}: the chip reports DEADLOCK after "
                               f"{hi << 32 | lo} cycles (queues parked at SYNC forever); only a "
                               f"reset recovers")
            if self.transport.now() > deadline:
                raise RunError(f"{self.transport.name}: the chip is still busy after "
                               f"{timeout:g} s ({hi << 32 | lo} cycles)")

    def read_cycles(self) -> int:
        """The cycle counter (of the last run, once it is done)."""
        lo, hi = self.link.read(REG["CYCLES_LO"], 2)
        return hi << 32 | lo

    def read_counter_list(self) -> list[int]:
        """Every performance counter, in :attr:`HostMap.counter_names` order."""
        return _complete(self._bus.read_counters())

    def read_counters(self) -> dict[str, dict[str, int]]:
        """Performance counters by group and name:
        ``{"issued": {queue: n}, "mem_reads": {slice: n}, ...}``."""
        out: dict[str, dict[str, int]] = {}
        for (group, name), value in zip(self.map.counter_names, self.read_counter_list(),
                                        strict=True):
            out.setdefault(group, {})[name] = value
        return out

    def read_words(self, words: list[tuple[int, int]]) -> np.ndarray:
        """SRAM words ``(mem index, address)`` as a uint8 array ``[len(words), lanes]``."""
        return _complete(self._bus.read_words(list(words)))

    # --- all of it ---------------------------------------------------------------------------

    def run_program(self, program: Program, *, readback: str = "auto",
                    timeout: float = 10.0) -> BoardResult:
        """Load, run and read back ``program`` and compare it with the golden model.

        Parameters
        ----------
        readback : {"auto", "written"}
            ``"auto"``: the words :func:`tb.scoreboard.readback_words` picks (all of SRAM for
            configs of at most 64 KiB); ``"written"``: only the words the golden model wrote
            and the output regions (faster over a slow link).
        timeout : float
            Seconds the run may take (see :meth:`run`).
        """
        from sim_models.golden import run_program
        from tb.runner import RtlResult
        from tb.scoreboard import compare, readback_words
        from tb.verify import Verified, outputs_from_words

        if readback not in ("auto", "written"):
            raise ValueError(f"readback must be 'auto' or 'written', not {readback!r}")
        cfg = self.config
        golden = run_program(cfg, program)
        if readback == "auto":
            words = readback_words(cfg, program, golden)
        else:
            chosen = set(golden.written_words)
            for region in program.outputs:
                for s in region.slices:
                    mi = cfg.slice_by_name[s].index
                    chosen.update((mi, region.addr + w) for w in range(region.words))
            words = sorted(chosen)
        sent0, recv0 = self.link.bytes_sent, self.link.bytes_received
        t0 = time.perf_counter()
        self.load(program)
        t1 = time.perf_counter()
        cycles = self.run(timeout)
        t2 = time.perf_counter()
        counters = self.read_counter_list()
        data = self.read_words(words)
        t3 = time.perf_counter()
        rtl = RtlResult(f"board:{self.transport.name}", cycles, counters, data, words, 0.0,
                        t2 - t1, t3 - t0)
        verified = Verified(cfg.name, golden, rtl, compare(cfg, program, golden, rtl))
        grouped: dict[str, dict[str, int]] = {}
        for (group, name), value in zip(self.map.counter_names, counters, strict=True):
            grouped.setdefault(group, {})[name] = value
        return BoardResult(
            config=cfg.name, cycles=cycles, golden_cycles=golden.cycles,
            matches=verified.matches,
            mismatch=None if verified.matches else str(verified.comparison),
            outputs=outputs_from_words(cfg, program, rtl), counters=grouped,
            seconds={"load": t1 - t0, "run": t2 - t1, "readback": t3 - t2, "total": t3 - t0},
            bytes_sent=self.link.bytes_sent - sent0,
            bytes_received=self.link.bytes_received - recv0, verified=verified)
