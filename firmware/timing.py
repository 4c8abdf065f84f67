"""Static timing analysis: a program's exact cycle count from its queue code alone.

The TSP's promise is that the compiler knows how long a program takes before it runs. This
module walks each queue's code — ``NOP``, ``REPEAT``, ``SYNC``/``NOTIFY``, ``END`` and the fixed
latencies of :mod:`openlpu.isa` — without touching any data, and returns the cycle count the
golden model and the RTL must report (the definition is in :mod:`sim_models.golden`).
"""

from __future__ import annotations

import heapq

from openlpu.config import ChipConfig
from openlpu.isa import OPS, Instruction, Opcode, Unit, latency

__all__ = ["predict_cycles", "issue_times"]


def issue_times(config: ChipConfig,
                queues: dict[str, list[Instruction]]) -> dict[str, list[tuple[int, Opcode]]]:
    """Every unit-instruction issue per queue as ``(cycle, opcode)``, and the END cycle as
    ``(cycle, Opcode.END)`` last.

    Raises
    ------
    ValueError
        Queues parked at SYNC that nobody releases (the program would never finish).
    """
    names = [q.name for q in config.queues]
    state = {n: {"pc": 0, "rep": 0, "prev": None, "prev_t": -1, "parked": False}
             for n in names}
    out: dict[str, list[tuple[int, Opcode]]] = {n: [] for n in names}
    heap = [(0, i) for i in range(len(names))]
    while heap:
        t = heap[0][0]
        notified = False
        while heap and heap[0][0] == t:
            _, qi = heapq.heappop(heap)
            name = names[qi]
            s = state[name]
            code = queues.get(name, [])
            if s["rep"]:
                out[name].append((t, s["prev"].op))
                s["rep"] -= 1
                s["prev_t"] = t
                if s["rep"]:
                    heapq.heappush(heap, (t + s["d"], qi))
                else:
                    s["pc"] += 1
                    heapq.heappush(heap, (t + 1, qi))
                continue
            instr = code[s["pc"]] if s["pc"] < len(code) else Instruction(Opcode.END)
            op = instr.op
            if op is Opcode.END:
                out[name].append((t, Opcode.END))
            elif op is Opcode.NOP:
                s["pc"] += 1
                heapq.heappush(heap, (t + instr.nop_count, qi))
            elif op is Opcode.REPEAT:
                s["rep"], s["d"] = instr.rep_n, instr.rep_d
                heapq.heappush(heap, (s["prev_t"] + instr.rep_d, qi))
            elif op is Opcode.SYNC:
                s["pc"] += 1
                s["parked"] = True
            elif op is Opcode.NOTIFY:
                s["pc"] += 1
                out[name].append((t, Opcode.NOTIFY))
                notified = True
                heapq.heappush(heap, (t + 1, qi))
            else:
                out[name].append((t, op))
                s["prev"], s["prev_t"] = instr, t
                s["pc"] += 1
                heapq.heappush(heap, (t + 1, qi))
        if notified:
            for qi, name in enumerate(names):
                if state[name]["parked"]:
                    state[name]["parked"] = False
                    heapq.heappush(heap, (t + 1, qi))
    parked = [n for n in names if state[n]["parked"]]
    if parked:
        raise ValueError("queues parked at SYNC are never released: " + ", ".join(parked))
    return out


def predict_cycles(config: ChipConfig, queues: dict[str, list[Instruction]]) -> int:
    """The exact cycle count of a program with these queues on ``config``."""
    done = 0
    for events in issue_times(config, queues).values():
        for t, op in events:
            if op is Opcode.END or op is Opcode.NOTIFY:
                done = max(done, t + 1)
            elif OPS[op].unit is not Unit.ICU:
                done = max(done, t + latency(op, config))
    return done + config.superlanes - 1
