"""The static schedule of lowered programs as a Chrome trace-event file (``openlpu layer
--trace-schedule``), which Perfetto (ui.perfetto.dev) and chrome://tracing open.

One process per program (the prefill, each decode step), laid end to end on one time axis.
Inside it, a track ``ops`` with the span of every lowered op (trace name, instruction kind,
phase, useful MACs), a track ``phases``, and one track per instruction queue, that is per
slice or unit (``mem_w0``, ``vxm1``, ``mxm0``, ...), with every instruction at the cycle it
issues in superlane 0. Consecutive issues of one instruction kind for one op in adjacent
cycles are merged into one slice (``count`` says how many), which keeps big layers' files
small.

Time: one microsecond of the trace is one chip cycle (the ``otherData`` block says so and
gives the clock), so Perfetto's time ruler reads directly in cycles.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["schedule_trace", "write_schedule_trace"]

_OPS_TID, _PHASES_TID, _FIRST_QUEUE_TID = 1, 2, 10


def _meta(pid: int, tid: int | None, key: str, name: str) -> dict:
    ev = {"ph": "M", "pid": pid, "name": key, "args": {"name": name}}
    if tid is not None:
        ev["tid"] = tid
    return ev


def schedule_trace(programs: list[tuple[str, object]]) -> dict:
    """The trace-event JSON object of ``programs``, a list of ``(name, LoweredLayer)`` run in
    that order."""
    from firmware.disasm import format_instruction
    from firmware.lower.layer import PHASES

    events: list[dict] = []
    offset = 0
    config = None
    for pid, (name, lowered) in enumerate(programs, start=1):
        config = lowered.config
        queue_tid = {q.name: _FIRST_QUEUE_TID + q.index for q in config.queues}
        events.append(_meta(pid, None, "process_name",
                            f"{name}: {lowered.tokens} token(s) at {lowered.start}, "
                            f"{lowered.predicted_cycles} cycles"))
        events.append({"ph": "M", "pid": pid, "name": "process_sort_index",
                       "args": {"sort_index": pid}})
        events.append(_meta(pid, _OPS_TID, "thread_name", "ops"))
        events.append(_meta(pid, _PHASES_TID, "thread_name", "phases"))
        for q in config.queues:
            events.append(_meta(pid, queue_tid[q.name], "thread_name", q.name))
        for op in lowered.ops():
            if op["end"] <= op["start"]:
                continue
            events.append({"ph": "X", "pid": pid, "tid": _OPS_TID, "name": op["name"],
                           "cat": op["phase"], "ts": offset + op["start"],
                           "dur": op["end"] - op["start"],
                           "args": {"kind": op["kind"], "phase": op["phase"],
                                    "macs": op["macs"], "first_cycle": op["start"],
                                    "end_cycle": op["end"]}})
        active, util = lowered.phase_cycles(), lowered.phase_utilization()
        for ph in PHASES:
            if ph in lowered.phases:
                lo, hi = lowered.phases[ph]
                events.append({"ph": "X", "pid": pid, "tid": _PHASES_TID, "name": ph,
                               "ts": offset + lo, "dur": max(1, hi - lo),
                               "args": {"active_cycles": active[ph],
                                        "mxm_utilization": util[ph]}})
        open_slice: dict[str, dict] = {}
        for queue, cycle, instr, op in lowered.instructions():
            mnemonic = instr.op.name
            cur = open_slice.get(queue)
            if (cur is not None and cur["name"] == mnemonic and cur["args"]["op"] == op
                    and cur["ts"] + cur["dur"] == offset + cycle):
                cur["dur"] += 1
                cur["args"]["count"] += 1
                continue
            cur = {"ph": "X", "pid": pid, "tid": queue_tid[queue], "name": mnemonic,
                   "cat": op, "ts": offset + cycle, "dur": 1,
                   "args": {"op": op, "cycle": cycle, "count": 1,
                            "first": format_instruction(instr, config)}}
            open_slice[queue] = cur
            events.append(cur)
        offset += lowered.predicted_cycles
    other = {"time_unit": "1 us of the trace = 1 chip cycle"}
    if config is not None:
        other.update(config=config.name, clock_mhz=config.clock_mhz)
    return {"traceEvents": events, "displayTimeUnit": "ns", "otherData": other}


def write_schedule_trace(path: Path | str, programs: list[tuple[str, object]]) -> int:
    """Write :func:`schedule_trace` of ``programs`` to ``path``; returns the event count."""
    trace = schedule_trace(programs)
    Path(path).write_text(json.dumps(trace, separators=(",", ":")))
    return len(trace["traceEvents"])
