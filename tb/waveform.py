"""FST waveforms of RTL runs: find signals, map simulation time to chip cycles, cut windows.

Both simulators trace the whole simulation (Verilator ignores ``$dumpoff``/``$dumpon``), so a
window is cut from the full trace afterwards: :func:`cut_window` copies the hierarchy and writes
every signal's value at the window's first cycle, then only the changes inside the window. The
result opens in GTKWave or Surfer like the original.

Chip cycles are counted from the host's START write, found in the trace itself (the rising clock
edge at which the chip samples ``bus_we`` with START set in ``CTRL``), so the mapping holds for
any testbench timing and either simulator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from openlpu.hostmap import CTRL_START, REG, START_TO_CYCLE0

__all__ = ["Waveform", "WaveformError", "Var", "cut_window", "cut_cycles", "cycle_edge"]

# Chip cycle t (superlane-0 time) is the state right after rising edge
# START + START_TO_CYCLE0 - 1 + t, where START is the edge at which the chip samples the START
# write (the state after it is bus cycle c + 1). Checked on both simulators by
# tests/test_waveform.py, which compares every stream register with the golden model.
_START_TO_CYCLE0 = START_TO_CYCLE0 - 1

_RANGE = re.compile(r"\s*\[\d+(:\d+)?\]$")


class WaveformError(RuntimeError):
    """The waveform file is missing, unreadable, or lacks a signal the caller needs."""


@dataclass(frozen=True)
class Var:
    """One traced signal: full dotted path (without a bit range), width and FST handle."""

    path: str
    width: int
    handle: int

    @property
    def name(self) -> str:
        """The last path component (the signal's name inside its module)."""
        return self.path.rsplit(".", 1)[-1]


def _lib():
    try:
        from pylibfst import ffi, lib
    except ImportError as e:  # a dependency, so only a broken install gets here
        raise WaveformError(f"reading FST needs the pylibfst package: {e}") from None
    return ffi, lib


def _text(ffi, ptr) -> str:
    return "" if ptr == ffi.NULL else ffi.string(ptr).decode("utf-8", "replace")


class Waveform:
    """A read-only FST file.

    Parameters
    ----------
    path : str or Path
        The ``.fst`` file a simulator wrote.

    Raises
    ------
    WaveformError
        If the file does not exist or is not an FST file.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not self.path.is_file():
            raise WaveformError(f"{self.path}: no such waveform file")
        self._ffi, self._lib = _lib()
        self._ctx = self._lib.fstReaderOpen(str(self.path).encode())
        if self._ctx == self._ffi.NULL:
            raise WaveformError(f"{self.path}: not a readable FST file")
        self.timescale = self._lib.fstReaderGetTimescale(self._ctx)
        self.start_time = self._lib.fstReaderGetStartTime(self._ctx)
        self.end_time = self._lib.fstReaderGetEndTime(self._ctx)
        self.vars: list[Var] = []
        self._by_name: dict[str, list[Var]] = {}
        self._read_hierarchy()

    def close(self) -> None:
        """Release the reader."""
        if self._ctx is not None:
            self._lib.fstReaderClose(self._ctx)
            self._ctx = None

    def __enter__(self) -> Waveform:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_hierarchy(self) -> None:
        ffi, lib = self._ffi, self._lib
        lib.fstReaderIterateHierRewind(self._ctx)
        scope: list[str] = []
        while (h := lib.fstReaderIterateHier(self._ctx)) != ffi.NULL:
            if h.htyp == lib.FST_HT_SCOPE:
                scope.append(_text(ffi, h.u.scope.name))
            elif h.htyp == lib.FST_HT_UPSCOPE:
                scope.pop()
            elif h.htyp == lib.FST_HT_VAR:
                name = _RANGE.sub("", _text(ffi, h.u.var.name))
                var = Var(".".join([*scope, name]), h.u.var.length, h.u.var.handle)
                self.vars.append(var)
                self._by_name.setdefault(var.name, []).append(var)

    def find(self, name: str) -> Var:
        """The signal called ``name``, at the shallowest level of the hierarchy it occurs
        (so ``clk`` is the chip's clock port, not a submodule's copy of it)."""
        found = self._by_name.get(name)
        if not found:
            raise WaveformError(f"{self.path}: no signal named {name!r} in the trace")
        return min(found, key=lambda v: v.path.count("."))

    def changes(self, variables: list[Var]) -> dict[int, list[tuple[int, str]]]:
        """Every change of the given signals: handle -> ``[(time, bits), ...]`` in time order,
        ``bits`` MSB first as ``0``/``1``/``x``/``z`` characters."""
        ffi, lib = self._ffi, self._lib
        wanted = {v.handle for v in variables}
        out: dict[int, list[tuple[int, str]]] = {h: [] for h in wanted}
        lib.fstReaderClrFacProcessMaskAll(self._ctx)
        for h in wanted:
            lib.fstReaderSetFacProcessMask(self._ctx, h)

        @ffi.callback("void(void *, uint64_t, fstHandle, const unsigned char *)")
        def on_change(_user, time, handle, value):
            if handle in out:
                out[handle].append((time, ffi.string(value).decode("ascii", "replace")))

        lib.fstReaderIterBlocks(self._ctx, on_change, ffi.NULL, ffi.NULL)
        return out

    def rising_edges(self, clock: str = "clk") -> list[int]:
        """Times of the rising edges of ``clock``."""
        var = self.find(clock)
        edges, last = [], "0"
        for time, bits in self.changes([var])[var.handle]:
            if bits == "1" and last != "1":
                edges.append(time)
            last = bits
        return edges

    def start_edges(self) -> list[int]:
        """Indices (into :meth:`rising_edges`) of the edges at which the chip took a START
        command from the host bus, in order."""
        edges = self.rising_edges()
        ports = [self.find(n) for n in ("bus_we", "bus_addr", "bus_wdata")]
        changes = self.changes(ports)
        starts = []
        pos = [0, 0, 0]
        value = ["0", "0", "0"]
        for i, edge in enumerate(edges):
            # the value sampled at an edge is the one set before it (inputs change on the
            # falling edge)
            for k, var in enumerate(ports):
                seq = changes[var.handle]
                while pos[k] < len(seq) and seq[pos[k]][0] < edge:
                    value[k] = seq[pos[k]][1]
                    pos[k] += 1
            if (value[0] == "1" and _int(value[1]) == REG["CTRL"]
                    and _int(value[2]) & CTRL_START):
                starts.append(i)
        return starts

    def start_edge(self) -> int:
        """Index into :meth:`rising_edges` of the last START command in the trace."""
        starts = self.start_edges()
        if not starts:
            raise WaveformError(f"{self.path}: the trace holds no START command")
        return starts[-1]


def cycle_edge(start: int, edges: list[int], cycle: int) -> int | None:
    """Index into ``edges`` of the rising edge after which chip cycle ``cycle`` (superlane-0
    time) holds, for the START at edge index ``start``; ``None`` outside the trace."""
    i = start + _START_TO_CYCLE0 + cycle
    return i if 0 <= i < len(edges) else None


def cut_cycles(source: Path | str, dest: Path | str, first: int, stop: int) -> tuple[int, int]:
    """Write ``dest``: chip cycles ``first <= cycle < stop`` of ``source`` (counted from its last
    START, superlane-0 time), clamped to the end of the trace. Returns the window's start and
    end times in the trace's time unit."""
    if not 0 <= first < stop:
        raise WaveformError(f"trace window {first}:{stop} is empty or negative; give A:B with "
                            f"0 <= A < B, in chip cycles from START")
    with Waveform(source) as wave:
        edges = wave.rising_edges()
        start = wave.start_edge()
        t0 = cycle_edge(start, edges, first)
        if t0 is None:
            raise WaveformError(f"trace window {first}:{stop} starts after the end of the "
                                f"trace ({len(edges) - start} cycles from START)")
        t1 = cycle_edge(start, edges, stop)
        t0, t1 = edges[t0], edges[t1] if t1 is not None else wave.end_time + 1
    cut_window(source, dest, t0, t1)
    return t0, t1


def _int(bits: str) -> int:
    """An MSB-first bit string as an int; undefined bits count as 0."""
    return int(bits.replace("x", "0").replace("z", "0") or "0", 2)


def cut_window(source: Path | str, dest: Path | str, t0: int, t1: int) -> int:
    """Write ``dest``: the signals of ``source`` from time ``t0`` (every signal's value then)
    up to but excluding ``t1`` (its changes). Returns the number of value changes written."""
    if t1 <= t0:
        raise WaveformError(f"empty waveform window: end time {t1} <= start time {t0}")
    with Waveform(source) as wave:
        ffi, lib = wave._ffi, wave._lib
        writer = lib.fstWriterCreate(str(dest).encode(), 1)
        if writer == ffi.NULL:
            raise WaveformError(f"cannot write {dest}")
        try:
            lib.fstWriterSetTimescale(writer, wave.timescale)
            lib.fstWriterSetPackType(writer, lib.FST_WR_PT_LZ4)
            lib.fstWriterSetRepackOnClose(writer, 1)
            handles = _copy_hierarchy(wave, writer)
            last: dict[int, bytes] = {}
            written = 0
            started = False

            @ffi.callback("void(void *, uint64_t, fstHandle, const unsigned char *)")
            def on_change(_user, time, handle, value):
                nonlocal written, started
                if time >= t1 or handle not in handles:
                    return
                bits = ffi.string(value)
                if time <= t0:
                    last[handle] = bits
                    return
                if not started:
                    _emit_frame(lib, writer, t0, last, handles)
                    written += len(last)
                    started = True
                lib.fstWriterEmitTimeChange(writer, time)
                lib.fstWriterEmitValueChange(writer, handles[handle], bits)
                written += 1

            lib.fstReaderSetFacProcessMaskAll(wave._ctx)
            lib.fstReaderIterBlocks(wave._ctx, on_change, ffi.NULL, ffi.NULL)
            if not started:
                _emit_frame(lib, writer, t0, last, handles)
                written += len(last)
            lib.fstWriterEmitTimeChange(writer, t1 - 1)
        finally:
            lib.fstWriterClose(writer)
    return written


def _emit_frame(lib, writer, t0: int, last: dict[int, bytes], handles: dict[int, int]) -> None:
    lib.fstWriterEmitTimeChange(writer, t0)
    for handle, bits in last.items():
        lib.fstWriterEmitValueChange(writer, handles[handle], bits)


def _copy_hierarchy(wave: Waveform, writer) -> dict[int, int]:
    """Copy scopes and variables to ``writer``; returns source handle -> new handle (aliases
    share the new handle of the signal they alias, as in the source)."""
    ffi, lib = wave._ffi, wave._lib
    skip = {lib.FST_VT_VCD_REAL, lib.FST_VT_VCD_REAL_PARAMETER, lib.FST_VT_VCD_REALTIME,
            lib.FST_VT_SV_SHORTREAL, lib.FST_VT_GEN_STRING}
    handles: dict[int, int] = {}
    lib.fstReaderIterateHierRewind(wave._ctx)
    while (h := lib.fstReaderIterateHier(wave._ctx)) != ffi.NULL:
        if h.htyp == lib.FST_HT_SCOPE:
            lib.fstWriterSetScope(writer, h.u.scope.typ, h.u.scope.name, h.u.scope.component)
        elif h.htyp == lib.FST_HT_UPSCOPE:
            lib.fstWriterSetUpscope(writer)
        elif h.htyp == lib.FST_HT_VAR and h.u.var.typ not in skip:
            v = h.u.var
            alias = handles.get(v.handle, 0) if v.is_alias else 0
            new = lib.fstWriterCreateVar(writer, v.typ, v.direction, v.length, v.name, alias)
            handles.setdefault(v.handle, new)
    return handles
