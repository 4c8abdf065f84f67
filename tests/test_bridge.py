"""hdl.bridge in Amaranth's simulator, byte by byte: every command of the link protocol against
a bus target played by the testbench, and every way a frame can go wrong (bad sync, header or
data checksum, unknown command, zero count, a frame cut short, a lost byte, a full receive
buffer, random garbage) getting exactly one error reply, after which the bridge works again.
Replies are checked byte for byte against :func:`openlpu.link.encode_reply`."""

import random

import pytest
from amaranth.sim import Simulator

from hdl.bridge import Bridge
from openlpu.hostmap import READ_LATENCY
from openlpu.link import (
    PING_WORDS,
    SYNC_CMD,
    Cmd,
    Status,
    bridge_info,
    crc8,
    encode_command,
    encode_reply,
)

TIMEOUT = 64  # idle cycles: short, so that error replies come quickly


class Bench:
    """A bridge, a bus target with a word memory, bytes in with gaps, bytes out with times."""

    def __init__(self, *, fifo_depth=16, cpb=5, tx_every=1, byte_gap=0):
        self.dut = Bridge(timeout=TIMEOUT, clocks_per_bit=cpb, fifo_depth=fifo_depth)
        self.memory = {4 * i: 0x1000 + i for i in range(3)}  # "ID", "VERSION", "CONFIG_HASH"
        self.writes = []  # (addr, data) in bus order
        self.tx_every = tx_every  # the transmitter takes a byte every this many cycles
        self.byte_gap = byte_gap  # idle cycles between received bytes
        self.out = bytearray()
        self.lost = []  # cycles at which to pulse rx_framing_error

    def run(self, chunks, settle=4 * TIMEOUT):
        """Send each ``(gap, bytes)`` chunk (``gap`` idle cycles before it, one byte per cycle
        within it); run until ``settle`` cycles after the last byte; returns the reply bytes."""
        dut = self.dut

        async def host(ctx):
            for gap, data in chunks:
                await ctx.tick().repeat(gap + 1)
                for b in data:
                    if b is None:  # a byte lost on the line: the receiver reports it
                        ctx.set(dut.rx_framing_error, 1)
                        await ctx.tick()
                        ctx.set(dut.rx_framing_error, 0)
                        continue
                    ctx.set(dut.rx.payload, b)
                    ctx.set(dut.rx.valid, 1)
                    await ctx.tick()
                    ctx.set(dut.rx.valid, 0)
                    if self.byte_gap:
                        await ctx.tick().repeat(self.byte_gap)
            await ctx.tick().repeat(settle)

        async def target(ctx):
            # the chip answers a read READ_LATENCY cycles after its strobe
            pending = [None] * (READ_LATENCY - 1)
            async for _c, _r, re, we, addr, wdata in ctx.tick().sample(
                    dut.bus_re, dut.bus_we, dut.bus_addr, dut.bus_wdata):
                assert not (re and we), "bus_re and bus_we high together"
                pending.append(self.memory.get(addr, 0) if re else None)
                answer = pending.pop(0)
                ctx.set(dut.bus_rvalid, answer is not None)
                if answer is not None:
                    ctx.set(dut.bus_rdata, answer)
                if we:
                    self.memory[addr] = wdata
                    self.writes.append((addr, wdata))

        async def transmitter(ctx):
            cycle = 0
            async for _c, _r, valid, ready, payload in ctx.tick().sample(
                    dut.tx.valid, dut.tx.ready, dut.tx.payload):
                if valid and ready:
                    self.out.append(payload)
                cycle += 1
                ctx.set(dut.tx.ready, cycle % self.tx_every == 0)

        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(host)
        sim.add_process(target)
        sim.add_process(transmitter)
        sim.run()
        out, self.out = bytes(self.out), bytearray()
        return out


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="timeout must be at least 16"):
        Bridge(timeout=3)
    with pytest.raises(TypeError, match="fifo_depth must be an integer"):
        Bridge(timeout=100, fifo_depth="8")


def test_ping_reports_the_bridge_and_the_chip_identification_registers():
    bench = Bench(cpb=217)
    reply = bench.run([(0, encode_command(Cmd.PING, 7))])
    assert reply == encode_reply(Status.OK, 7, [bridge_info(217), 0x1000, 0x1001, 0x1002])
    assert PING_WORDS == 4


def test_burst_write_then_read_back_with_auto_increment():
    bench = Bench()
    words = [random.Random(1).randrange(2**32) for _ in range(9)]
    reply = bench.run([(0, encode_command(Cmd.WRITE, 1, 0x4000_0100, 9, words)),
                       (0, encode_command(Cmd.READ, 2, 0x4000_0100, 9))])
    assert reply == encode_reply(Status.OK, 1) + encode_reply(Status.OK, 2, words)
    assert bench.writes == [(0x4000_0100 + 4 * i, w) for i, w in enumerate(words)]


def test_fill_writes_one_word_count_times():
    bench = Bench()
    reply = bench.run([(0, encode_command(Cmd.FILL, 3, 0x4000_0000, 100, [0xDEADBEEF]))])
    assert reply == encode_reply(Status.OK, 3)
    assert bench.writes == [(0x4000_0000 + 4 * i, 0xDEADBEEF) for i in range(100)]


def test_back_to_back_commands_each_get_their_reply_in_order():
    # bytes come and go at the pace of a UART (a character every 10 bit times); commands
    # follow each other with no gap, so later ones wait in the FIFO while replies go out
    bench = Bench(byte_gap=49, tx_every=50)
    frames = [encode_command(Cmd.WRITE, 10, 0x40, 1, [5]), encode_command(Cmd.READ, 11, 0x40, 1),
              encode_command(Cmd.PING, 12), encode_command(Cmd.FILL, 13, 0x80, 3, [9])]
    # (the last one waits for the PING reply to be out, so the FIFO never holds 16 bytes)
    reply = bench.run([(0, b"".join(frames)), (10 * 50, encode_command(Cmd.READ, 14, 0x7C, 5))],
                      settle=60 * 50)
    assert reply == (encode_reply(Status.OK, 10) + encode_reply(Status.OK, 11, [5])
                     + encode_reply(Status.OK, 12, [bridge_info(5), 0x1000, 0x1001, 0x1002])
                     + encode_reply(Status.OK, 13) + encode_reply(Status.OK, 14, [0, 9, 9, 9, 0]))


def _corrupt(frame: bytes, index: int) -> bytes:
    return frame[:index] + bytes([frame[index] ^ 0x10]) + frame[index + 1:]


@pytest.mark.parametrize("index", [1, 2, 3, 6, 8, 9])
def test_bad_header_checksum_is_refused_and_nothing_happens(index):
    bench = Bench()
    frame = _corrupt(encode_command(Cmd.WRITE, 4, 0x100, 2, [1, 2]), index)
    reply = bench.run([(0, frame), (5 * TIMEOUT, encode_command(Cmd.READ, 5, 0x100, 1))])
    status = reply[1]
    assert status == Status.BAD_HEADER_CRC
    assert reply[:3 + 1] == encode_reply(Status.BAD_HEADER_CRC, reply[2])
    assert bench.writes == []
    assert reply[4:] == encode_reply(Status.OK, 5, [0])  # and the bridge works again


def test_bad_data_checksum_holds_back_the_last_word():
    bench = Bench()
    frame = encode_command(Cmd.WRITE, 6, 0x200, 3, [1, 2, 3])
    reply = bench.run([(0, frame[:-1] + bytes([frame[-1] ^ 1]))])
    assert reply == encode_reply(Status.BAD_DATA_CRC, 6)
    assert bench.writes == [(0x200, 1), (0x204, 2)]  # the last word (0x208) was held back


def test_bad_fill_checksum_writes_nothing():
    bench = Bench()
    frame = encode_command(Cmd.FILL, 6, 0x200, 50, [7])
    reply = bench.run([(0, frame[:-1] + bytes([frame[-1] ^ 1]))])
    assert reply == encode_reply(Status.BAD_DATA_CRC, 6)
    assert bench.writes == []


def _frame(cmd: int, tag: int, addr: int, count: int) -> bytes:
    header = bytes([cmd, tag]) + addr.to_bytes(4, "little") + count.to_bytes(2, "little")
    return bytes([SYNC_CMD]) + header + bytes([crc8(header)])


@pytest.mark.parametrize("frame, status", [
    (_frame(0x7E, 8, 0, 1), Status.BAD_COMMAND),
    (_frame(Cmd.READ, 8, 0, 0), Status.BAD_LENGTH),
    (_frame(Cmd.WRITE, 8, 0, 0) + bytes(5), Status.BAD_LENGTH),
])
def test_unknown_command_and_zero_count_are_refused(frame, status):
    bench = Bench()
    assert bench.run([(0, frame)]) == encode_reply(status, 8)
    assert bench.writes == []


def test_bytes_before_a_sync_byte_get_one_bad_sync_reply():
    bench = Bench()
    reply = bench.run([(0, b"hello, board"), (5 * TIMEOUT, encode_command(Cmd.PING, 1))])
    assert reply[:4] == encode_reply(Status.BAD_SYNC, 0)
    assert reply[4:] == encode_reply(Status.OK, 1, [bridge_info(5), 0x1000, 0x1001, 0x1002])


def test_a_frame_cut_short_times_out():
    bench = Bench()
    frame = encode_command(Cmd.WRITE, 9, 0x300, 4, [1, 2, 3, 4])
    reply = bench.run([(0, frame[:14])])
    assert reply == encode_reply(Status.TIMEOUT, 9)
    assert bench.writes == []  # the first word is still held back


def test_a_lost_byte_is_a_framing_error():
    bench = Bench()
    frame = list(encode_command(Cmd.WRITE, 9, 0x300, 1, [1]))
    reply = bench.run([(0, frame[:5] + [None] + frame[5:])])
    assert reply == encode_reply(Status.FRAMING, 9)
    assert bench.writes == []


def test_a_full_receive_buffer_is_an_overrun():
    bench = Bench(fifo_depth=4, tx_every=4)
    # a long reply keeps the bridge busy while a whole command arrives: 4 bytes fit the FIFO
    reply = bench.run([(0, encode_command(Cmd.READ, 1, 0, 8) + encode_command(Cmd.PING, 2))])
    assert reply[:36] == encode_reply(Status.OK, 1, [0x1000, 0x1001, 0x1002] + [0] * 5)
    assert reply[36:] == encode_reply(Status.OVERRUN, 0)


@pytest.mark.parametrize("seed", range(6))
def test_random_garbage_never_hangs_the_bridge(seed):
    rng = random.Random(seed)
    bench = Bench()
    garbage = [rng.choice([SYNC_CMD, rng.randrange(256)]) for _ in range(rng.randrange(1, 60))]
    chunks = [(0, garbage[i:i + 7]) for i in range(0, len(garbage), 7)]
    reply = bench.run(chunks + [(5 * TIMEOUT, encode_command(Cmd.PING, 0x33))])
    ping = encode_reply(Status.OK, 0x33, [bridge_info(5), 0x1000, 0x1001, 0x1002])
    assert reply.endswith(ping)
    # everything before it is well-formed error replies (a random frame that happens to be
    # valid gets an OK reply of unknown length: stop there)
    rest = reply[:-len(ping)]
    while rest and rest[1] != Status.OK:
        assert rest[0] == 0x5A and crc8(rest[1:3]) == rest[3], rest.hex()
        rest = rest[4:]
