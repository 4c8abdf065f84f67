"""hdl.uart in Amaranth's simulator: the transmitter's line against the 8N1 frame, the receiver
against bit-banged bytes (random data, back to back, a bad stop bit, a byte not taken in time),
and a loopback of random bytes through both."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from firmware.runtime.sim import uart_frame
from hdl.uart import UartRx, UartTx


@pytest.mark.parametrize("cls", [UartTx, UartRx])
def test_clocks_per_bit_is_validated(cls):
    with pytest.raises(ValueError, match="clocks_per_bit must be 4.."):
        cls(clocks_per_bit=3)
    with pytest.raises(TypeError, match="clocks_per_bit must be an integer"):
        cls(clocks_per_bit=8.0)
    assert cls(clocks_per_bit=217).clocks_per_bit == 217


@pytest.mark.parametrize("cpb", [4, 5, 9])
def test_transmitter_sends_8n1_frames_back_to_back(cpb):
    dut = UartTx(clocks_per_bit=cpb)
    data = [random.Random(cpb).randrange(256) for _ in range(6)]
    line = []

    async def send(ctx):
        assert ctx.get(dut.tx) == 1  # idles high after reset
        for byte in data:
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def watch(ctx):
        async for _clk, _rst, tx in ctx.tick().sample(dut.tx):
            line.append(tx)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(send)
    sim.add_process(watch)
    sim.run_until(1e-6 * (len(data) * 10 * cpb + 20))
    start = line.index(0)
    want = [level for byte in data for level in uart_frame(byte) for _ in range(cpb)]
    # every bit lasts exactly cpb cycles and consecutive bytes leave no idle gap
    assert line[start:start + len(want)] == want
    assert all(level == 1 for level in line[start + len(want):])


def _rx_bench(cpb, frames, ready_after=None):
    """Bit-bang ``frames`` (lists of line levels) into a receiver; returns received bytes,
    framing-error and overrun pulse counts."""
    dut = UartRx(clocks_per_bit=cpb)
    got, events = [], {"framing": 0, "overrun": 0}

    async def drive(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3)
        for frame in frames:
            for level in frame:
                ctx.set(dut.rx, level)
                await ctx.tick().repeat(cpb)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(4 * cpb)

    async def take(ctx):
        cycle = 0
        async for _clk, _rst, valid, ready, payload, fe, ov in ctx.tick().sample(
                dut.o.valid, dut.o.ready, dut.o.payload, dut.framing_error, dut.overrun):
            cycle += 1
            if valid and ready:  # a transfer in the cycle that just ended
                got.append(payload)
            ctx.set(dut.o.ready, ready_after is None or cycle >= ready_after)
            events["framing"] += fe
            events["overrun"] += ov

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.add_process(take)
    sim.run()
    return got, events


@pytest.mark.parametrize("cpb", [4, 7, 16])
def test_receiver_takes_random_bytes_back_to_back(cpb):
    data = [random.Random(cpb).randrange(256) for _ in range(20)]
    got, events = _rx_bench(cpb, [uart_frame(b) for b in data])
    assert got == data
    assert events == {"framing": 0, "overrun": 0}


def test_receiver_drops_a_byte_with_a_bad_stop_bit_and_recovers():
    bad = uart_frame(0x55)[:-1] + [0, 0, 1]  # stop bit 0, then the line returns high
    got, events = _rx_bench(8, [uart_frame(0x12), bad, uart_frame(0x34)])
    assert got == [0x12, 0x34]
    assert events["framing"] == 1


def test_receiver_reports_overrun_when_a_byte_is_not_taken():
    # nobody takes bytes until long after the second one has arrived
    got, events = _rx_bench(4, [uart_frame(0xA1), uart_frame(0xB2)], ready_after=90)
    assert got == [0xA1]
    assert events["overrun"] == 1


def test_loopback_of_random_bytes():
    cpb = 6
    m = Module()
    m.submodules.tx = tx = UartTx(clocks_per_bit=cpb)
    m.submodules.rx = rx = UartRx(clocks_per_bit=cpb)
    m.d.comb += [rx.rx.eq(tx.tx), rx.o.ready.eq(1)]
    data = [random.Random(7).randrange(256) for _ in range(40)]
    got = []

    async def send(ctx):
        for byte in data:
            ctx.set(tx.i.payload, byte)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
        ctx.set(tx.i.valid, 0)
        await ctx.tick().repeat(12 * cpb)

    async def receive(ctx):
        async for _clk, _rst, valid, payload in ctx.tick().sample(rx.o.valid, rx.o.payload):
            if valid:
                got.append(payload)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(send)
    sim.add_process(receive)
    sim.run()
    assert got == data
