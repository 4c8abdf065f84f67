"""Host-bus driver: load a program, run it, read the results back.

The same driver runs under cocotb (Verilator, Icarus) and under Amaranth's simulator, through a
small adapter: ``set(port, value)``, ``get(port)``, ``await tick()`` (to the point in the next
cycle where inputs may change and registered outputs hold that cycle's values) and
``await ticks(n)`` (let the clock run ``n`` cycles without Python in the loop). Under cocotb that
point is the falling clock edge, which works the same on every simulator. Addresses come from
:mod:`openlpu.hostmap`.
"""

from __future__ import annotations

import numpy as np

from firmware.program import Program
from openlpu.config import ChipConfig
from openlpu.hostmap import (
    CTRL_CLEAR,
    CTRL_START,
    READ_LATENCY,
    REG,
    STATUS_DEADLOCK,
    STATUS_DONE,
    HostMap,
)
from openlpu.isa import Instruction, Opcode, encode

__all__ = ["HostBus", "RtlError", "CocotbPorts", "AmaranthPorts", "queue_image"]


class RtlError(RuntimeError):
    """The RTL did something the host protocol does not allow (never finished, deadlock,
    wrong identification)."""


def queue_image(program: Program, queue: str) -> list[int]:
    """The instruction words a host writes to queue ``queue`` for ``program``: its code, ending
    in END (END alone for a queue without code)."""
    end = encode(Instruction(Opcode.END))
    code = [encode(i) for i in program.queues.get(queue, [])]
    if not code or code[-1] != end:
        code.append(end)
    return code


class CocotbPorts:
    """Adapter for a cocotb DUT handle whose ``clk`` runs with ``period_ns``."""

    def __init__(self, dut, period_ns: int = 10):
        from cocotb.triggers import FallingEdge, Timer

        self._dut, self._falling, self._timer = dut, FallingEdge, Timer
        self._period_ps = period_ns * 1000

    def set(self, name: str, value: int) -> None:
        getattr(self._dut, name).value = int(value)

    def get(self, name: str) -> int:
        value = getattr(self._dut, name).value
        if not value.is_resolvable:
            raise RtlError(f"{name} is not a defined 0/1 value: {value}")
        return int(value)

    async def tick(self) -> None:
        await self._falling(self._dut.clk)

    async def ticks(self, n: int) -> None:
        # One timer instead of ClockCycles, which wakes Python at every edge and would cap a
        # free run at Python's speed. Called at a falling edge: the timer ends a quarter
        # period before the n-th falling edge from here, clear of both edges.
        if n <= 0:
            return
        if n > 1:
            await self._timer(self._period_ps * n - self._period_ps // 4, unit="ps")
        await self._falling(self._dut.clk)


class AmaranthPorts:
    """Adapter for an Amaranth simulator testbench context and the chip component."""

    def __init__(self, ctx, chip):
        self._ctx, self._chip = ctx, chip

    def set(self, name: str, value: int) -> None:
        self._ctx.set(getattr(self._chip, name), int(value))

    def get(self, name: str) -> int:
        return int(self._ctx.get(getattr(self._chip, name)))

    async def tick(self) -> None:
        await self._ctx.tick()

    async def ticks(self, n: int) -> None:
        await self._ctx.tick().repeat(n)


class HostBus:
    """Bus master for the chip top's ``bus_*`` ports, through a port adapter."""

    def __init__(self, ports, config: ChipConfig):
        self.ports = ports
        self.config = config
        self.map = HostMap(config)
        for name in ("bus_we", "bus_re", "bus_addr", "bus_wdata"):
            ports.set(name, 0)

    async def write(self, addr: int, data: int) -> None:
        """One 32-bit write."""
        await self.write_many([(addr, data)])

    async def write_many(self, pairs) -> None:
        """Back-to-back writes, one per cycle."""
        p = self.ports
        await p.tick()
        for addr, data in pairs:
            p.set("bus_addr", addr)
            p.set("bus_wdata", int(data) & 0xFFFF_FFFF)
            p.set("bus_we", 1)
            await p.tick()
        p.set("bus_we", 0)

    async def read_many(self, addrs) -> list[int]:
        """Pipelined reads, one per cycle; returns the values in order (each arrives
        ``READ_LATENCY`` cycles after its strobe)."""
        p = self.ports
        addrs = list(addrs)
        out = []
        await p.tick()
        for i in range(len(addrs) + READ_LATENCY - 1):
            if i < len(addrs):
                p.set("bus_addr", addrs[i])
            p.set("bus_re", int(i < len(addrs)))
            await p.tick()
            k = i - (READ_LATENCY - 1)  # the read whose data is on the bus now
            if k >= 0:
                try:
                    out.append(p.get("bus_rdata"))
                except RtlError as e:
                    raise RtlError(f"read of bus address {addrs[k]:#010x}: {e}") from None
        p.set("bus_re", 0)
        return out

    async def read(self, addr: int) -> int:
        """One 32-bit read."""
        return (await self.read_many([addr]))[0]

    # --- program --------------------------------------------------------------------------------

    async def check_identity(self) -> None:
        """Refuse to run if the chip is not the config the program was built for."""
        names = ("ID", "CONFIG_HASH", "CONFIG0", "CONFIG1", "CONFIG2")
        got = await self.read_many([REG[n] for n in names])
        want = self.map.config_words
        for name, value in zip(names, got, strict=True):
            if value != want[name]:
                raise RtlError(f"chip register {name} = {value:#010x}, expected "
                               f"{want[name]:#010x} for config {self.config.name!r}")

    async def load(self, program: Program) -> None:
        """Write every queue (:func:`queue_image`) and the program's SRAM contents."""
        cfg, hm = self.config, self.map
        pairs = []
        for q in cfg.queues:
            for w, word in enumerate(queue_image(program, q.name)):
                base = hm.queue_word(q.index, w)
                pairs += [(base, word & 0xFFFF_FFFF), (base + 4, word >> 32)]
        for init in program.mem_init:
            mi = cfg.slice_by_name[init.slice].index
            data = np.asarray(init.data, dtype=np.uint8)
            padded = np.zeros((data.shape[0], hm.lanes_padded), dtype=np.uint8)
            padded[:, :data.shape[1]] = data
            words32 = padded.view("<u4")
            for w in range(data.shape[0]):
                base = hm.sram_word(mi, init.addr + w)
                pairs += [(base + 4 * j, int(v)) for j, v in enumerate(words32[w])]
        await self.write_many(pairs)

    async def read_queue(self, queue_index: int, n: int) -> list[int]:
        """Instruction words ``0 .. n - 1`` of queue ``queue_index`` (chip idle)."""
        addrs = [self.map.queue_word(queue_index, w) + 4 * h for w in range(n) for h in (0, 1)]
        values = await self.read_many(addrs)
        return [values[2 * w] | values[2 * w + 1] << 32 for w in range(n)]

    async def clear_words(self, words: list[tuple[int, int]]) -> None:
        """Write zeros to SRAM words ``(mem_index, addr)`` (what an earlier program left)."""
        hm = self.map
        groups = -(-self.config.lanes // 4)
        await self.write_many([(hm.sram_word(mi, a) + 4 * j, 0)
                               for mi, a in words for j in range(groups)])

    async def run(self, expected_cycles: int, max_cycles: int) -> int:
        """Start, let the chip run free, wait for DONE; returns CYCLES."""
        await self.write(REG["CTRL"], CTRL_CLEAR | CTRL_START)
        # run free for the predicted length: no Python in the loop
        if expected_cycles > 2:
            await self.ports.ticks(expected_cycles - 2)
        waited = max(expected_cycles - 2, 0)
        while True:
            status = await self.read(REG["STATUS"])
            if status & STATUS_DONE:
                break
            if status & STATUS_DEADLOCK:
                raise RtlError("the chip reports DEADLOCK: queues parked at SYNC forever")
            waited += 2
            if waited > max_cycles:
                raise RtlError(f"the chip did not finish within {max_cycles} cycles")
            if waited > expected_cycles + 64:  # far off the prediction: poll less often
                await self.ports.ticks(256)
                waited += 256
        lo, hi = await self.read_many([REG["CYCLES_LO"], REG["CYCLES_HI"]])
        return hi << 32 | lo

    async def read_counters(self) -> list[int]:
        """Every performance counter, in :attr:`HostMap.counter_names` order."""
        n = len(self.map.counter_names)
        return await self.read_many([self.map.counter(i) for i in range(n)])

    async def read_words(self, words: list[tuple[int, int]]) -> np.ndarray:
        """SRAM words ``(mem_index, addr)`` as a uint8 array ``[len(words), lanes]``."""
        hm, lanes = self.map, self.config.lanes
        groups = -(-lanes // 4)
        addrs = [hm.sram_word(mi, a) + 4 * j for mi, a in words for j in range(groups)]
        values = await self.read_many(addrs)
        raw = np.array(values, dtype="<u4").view(np.uint8).reshape(len(words), groups * 4)
        return raw[:, :lanes]
