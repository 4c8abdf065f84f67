"""The measured resource and Fmax table of docs/fpga.md, written by running the flow.

``python -m openlpu.fpga.table`` synthesises every requested preset for every target
(:func:`openlpu.fpga.synth.synthesize`, one run at a time) and replaces the text between
:data:`BEGIN` and :data:`END` in docs/fpga.md with a markdown table of the results. Designs that
yosys already finds too large are reported from yosys' counts without place and route.
``--reuse`` takes a run's ``result.json`` from its output directory instead of running it again
(whatever RTL it was measured on: the table names the RTL source hash of every row). Rows of
the table that a run does not measure are kept, so one long row can be added or re-measured
alone. ``--breakdown`` adds, per config and target, the resources per instance from a
hierarchical yosys run (``openlpu synth --hierarchy``); ``--units`` the resources, Fmax and
critical path of each unit placed and routed on its own, which shows where the chip's Fmax is
lost.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from openlpu.config import PRESETS, get_config

from .devices import DEVICES, get_device
from .synth import DoesNotFit, SynthError, SynthResult, synthesize

__all__ = ["BEGIN", "END", "breakdown_markdown", "main", "markdown", "merge_table",
           "replace_between", "run_one", "units_markdown"]

BEGIN = "<!-- openlpu-fpga-table: begin (python -m openlpu.fpga.table) -->"
END = "<!-- openlpu-fpga-table: end -->"
BREAKDOWN_BEGIN = "<!-- openlpu-fpga-breakdown: begin (python -m openlpu.fpga.table) -->"
BREAKDOWN_END = "<!-- openlpu-fpga-breakdown: end -->"
UNITS_BEGIN = "<!-- openlpu-fpga-units: begin (python -m openlpu.fpga.table) -->"
UNITS_END = "<!-- openlpu-fpga-units: end -->"
_RTL_PREFIX = "RTL: "
_RTL_SUFFIX = " (config hash, RTL source hash); tools: "


def _cell(r: dict, res: str) -> str:
    used, avail = r.get(res), r.get(f"{res}_available")
    if used is None:
        return "-"
    pct = f" ({100 * used / avail:.0f} %)" if avail else ""
    return f"{used:,} / {avail:,}{pct}"


def markdown(rows: list[dict]) -> str:
    """Markdown table of :meth:`SynthResult.to_dict` rows (or ``{"config", "target",
    "error"}`` rows for runs that failed)."""
    head = ("| config | target | fits | LUT4 | FF | DSP | BRAM | Fmax MHz | yosys s "
            "| nextpnr s | note |")
    lines = [head, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        sec = r.get("seconds", {})
        if "fits" not in r:
            lines.append(f"| {r['config']} | {r['target']} | ? | | | | | | | | {r['error']} |")
            continue
        fits = "yes" if r["fits"] else "**no**"
        fmax = f"{r['fmax_mhz']:.1f}" if r.get("fmax_mhz") is not None else "-"
        notes = []
        if not r["fits"]:
            notes.append("over: " + "; ".join(
                f"{o['label']} {o['needed'] / o['available'] * 100:.0f} %" for o in r["over"]))
            notes.append("counts from yosys" if r["stage"] == "yosys"
                         else "nextpnr could not place")
        if r.get("router"):
            notes.append(f"nextpnr --router {r['router']}")
        if r.get("critical_path") and r["fits"]:
            cp = r["critical_path"]
            notes.append(f"critical path {cp['delay_ns']:.1f} ns via "
                         + " > ".join(cp["instances"]))
        lines.append(
            f"| {r['config']} | {r['target']} | {fits} | "
            + " | ".join(_cell(r, res) for res in ("luts", "ffs", "dsps", "brams"))
            + f" | {fmax} | {sec.get('yosys', 0):.0f} | "
            + (f"{sec['nextpnr']:.0f}" if "nextpnr" in sec else "-")
            + f" | {', '.join(notes)} |")
    rtl = {(r["config"], r["target"]): r["verilog"] for r in rows if r.get("verilog")}
    tools = {v for r in rows for k, v in r.get("tools", {}).items()
             if k in ("yosys", "nextpnr") and v}
    return "\n".join(lines + _rtl_line(rtl, tools))



def _rtl_line(rtl: dict[tuple[str, str], str], tools: set[str]) -> list[str]:
    if not rtl:
        return []
    return ["", _RTL_PREFIX + ", ".join(f"{c} on {t} `{v}`" for (c, t), v in sorted(rtl.items()))
            + _RTL_SUFFIX + ", ".join(sorted(tools)) + "."]


def _row_key(line: str) -> tuple[str, str] | None:
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return (cells[0], cells[1]) if line.startswith("| ") and len(cells) > 2 else None


def merge_table(old: str, new: str) -> str:
    """The table ``new`` (of :func:`markdown`) with the rows of ``old`` it does not measure.

    A row is keyed by its config and target. Kept rows come first, in their old order, and
    the RTL line names the RTL file of every row; a row of ``new`` replaces the old row of
    its key.
    """
    new_lines = new.splitlines()
    head, new_rows = new_lines[:2], [ln for ln in new_lines[2:] if _row_key(ln)]
    measured = {_row_key(ln) for ln in new_rows}
    old_rows = [ln for ln in old.splitlines()
                if _row_key(ln) not in (None, ("config", "target"), *measured)]
    rtl: dict[tuple[str, str], str] = {}
    tools: set[str] = set()
    for lines, rows in ((old.splitlines(), old_rows), (new_lines, new_rows)):
        keys = [_row_key(ln) for ln in rows]
        for line in lines:
            if not line.startswith(_RTL_PREFIX):
                continue
            body, _, tail = line[len(_RTL_PREFIX):].partition(_RTL_SUFFIX)
            for entry in body.split(", "):
                name, _, file = entry.rpartition(" ")
                # "config on target `file`", or "config `file`" for every row of the config
                for key in keys:
                    if name in (key[0], f"{key[0]} on {key[1]}"):
                        rtl[key] = file.strip("`")
            tools.update(t for t in tail.rstrip(".").split(", ") if t)
    return "\n".join(head + old_rows + new_rows + _rtl_line(rtl, tools))


def units_markdown(results: list[dict]) -> str:
    """Markdown table of per-unit runs: resources, Fmax and what the critical path crosses."""
    out = []
    for config, target in dict.fromkeys((r["config"], r["target"]) for r in results):
        labels = get_device(target).family.labels
        freqs = sorted({r["freq_mhz"] for r in results if r.get("freq_mhz")
                        and (r["config"], r["target"]) == (config, target)})
        goal = f", nextpnr target {', '.join(f'{f:g}' for f in freqs)} MHz" if freqs else ""
        out.append(f"**{config} on {target}**, each unit placed and routed alone{goal}\n")
        out.append("| unit | " + " | ".join(labels[k] for k in ("luts", "ffs", "dsps", "brams"))
                   + " | Fmax MHz | critical path (logic + routing) | from | to |")
        out.append("|---|---:|---:|---:|---:|---:|---|---|---|")
        for r in results:
            if (r["config"], r["target"]) != (config, target):
                continue
            if "fits" not in r:
                out.append(f"| {r['top']} | | | | | | {r['error']} | | |")
                continue
            cp = r.get("critical_path") or {}
            fmax = f"{r['fmax_mhz']:.1f}" if r.get("fmax_mhz") is not None else "-"
            path = (f"{cp['delay_ns']:.1f} ns ({cp['logic_ns']:.1f} + {cp['routing_ns']:.1f})"
                    if cp else "-")
            out.append(f"| {r['top']} | " + " | ".join(
                f"{r[k]:,}" if r.get(k) is not None else "-"
                for k in ("luts", "ffs", "dsps", "brams"))
                + f" | {fmax} | {path} | `{cp.get('from_cell', '-')}` "
                  f"| `{cp.get('to_cell', '-')}` |")
        verilog = sorted({r["verilog"] for r in results if r.get("verilog")
                          and (r["config"], r["target"]) == (config, target)})
        if verilog:
            out.append("")
            out.append("RTL: " + ", ".join(f"`{v}`" for v in verilog) + ".")
        out.append("")
    return "\n".join(out).rstrip()


def breakdown_markdown(results: list[dict]) -> str:
    """Markdown tables of the per-instance resources of hierarchical runs."""
    out = []
    for r in results:
        labels = get_device(r["target"]).family.labels
        out.append(f"**{r['config']} on {r['target']}** (yosys `-noflatten`, "
                   f"{r['seconds'].get('yosys', 0):.0f} s; totals "
                   + ", ".join(f"{r[k]:,} {labels[k]}" for k in ("luts", "ffs", "dsps", "brams"))
                   + ")\n")
        out.append("| instance | " + " | ".join(labels[k] for k in ("luts", "ffs", "dsps",
                                                                      "brams")) + " |")
        out.append("|---|---:|---:|---:|---:|")
        for inst, c in r["hierarchy"].items():
            if any(c.values()):
                out.append(f"| {inst} | " + " | ".join(f"{c[k]:,}" for k in ("luts", "ffs",
                                                                              "dsps", "brams"))
                           + " |")
        out.append("")
    return "\n".join(out).rstrip()


def replace_between(text: str, begin: str, end: str, body: str) -> str:
    """``text`` with everything between the ``begin`` and ``end`` marker lines replaced.

    Raises
    ------
    ValueError
        A marker is missing.
    """
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        raise ValueError(f"markers {begin!r} ... {end!r} not found in order")
    return text[:i + len(begin)] + "\n" + body + "\n" + text[j:]


def run_one(config_name: str, target: str, verilog, *, reuse: bool,
            hierarchy: bool = False, timeout_s: float | None = None, progress=None,
            router: str | None = None, top: str = "chip",
            freq_mhz: float | None = None) -> dict:
    """One table row: a :meth:`SynthResult.to_dict`, reused or measured.

    ``verilog()`` returns the chip's Verilog (from :func:`hdl.verilog.cached_verilog`), or
    ``verilog`` is None and ``top``'s Verilog comes from the cache; ``freq_mhz`` is nextpnr's
    target (default: the config's clock); with ``reuse`` an earlier
    ``result.json`` of the same options is taken whatever RTL it was measured on (the table
    names the RTL of every row).
    """
    config = get_config(config_name)
    out = Path("build/fpga") / f"{config.name}-{target}-{top}{'-hier' if hierarchy else ''}"
    saved = out / "result.json"
    if reuse and saved.exists():
        old = json.loads(saved.read_text())
        if old.get("dsp_mapping") and (old.get("hierarchy") is not None) == hierarchy:
            if progress is not None:
                progress(f"reusing {saved} ({old.get('verilog')})")
            return old
    try:
        result: SynthResult = synthesize(config, target, top=top, out_dir=out,
                                         hierarchy=hierarchy, timeout_s=timeout_s,
                                         progress=progress,
                                         verilog=verilog() if verilog else None,
                                         router=router, freq_mhz=freq_mhz)
    except DoesNotFit as e:
        result = e.result
    except SynthError as e:
        return {"config": config.name, "target": target, "top": top, "error": str(e)}
    return result.to_dict()


def _pair(text: str) -> tuple[str, str]:
    name, _, target = text.partition(":")
    get_config(name)
    get_device(target)
    return name, target


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m openlpu.fpga.table``."""
    p = argparse.ArgumentParser(prog="python -m openlpu.fpga.table",
                                description=__doc__.splitlines()[0])
    p.add_argument("pairs", nargs="*", metavar="CONFIG:TARGET",
                   help="rows to measure (default: every --configs on every --targets)")
    p.add_argument("--configs", nargs="+", default=["ice40", "ecp5"], choices=list(PRESETS))
    p.add_argument("--targets", nargs="+", default=list(DEVICES), choices=list(DEVICES))
    p.add_argument("--docs", default="docs/fpga.md", help="markdown file with the markers")
    p.add_argument("--reuse", action="store_true",
                   help="reuse earlier result.json files instead of running again")
    p.add_argument("--breakdown", nargs="*", metavar="CONFIG:TARGET",
                   help="per-instance tables (hierarchical yosys runs) for these pairs")
    p.add_argument("--units", nargs="*", metavar="CONFIG:TARGET",
                   help="per-unit tables (each unit placed and routed alone) for these pairs")
    p.add_argument("--units-freq", type=float, default=100.0, metavar="MHZ",
                   help="nextpnr's target for the unit tables (default 100: how fast each unit "
                        "can go, not the config's nominal clock, which nextpnr stops at)")
    p.add_argument("--timeout", type=float, metavar="SEC", help="stop a tool after SEC s")
    p.add_argument("--router", choices=["router1", "router2"], default="router2",
                   help="nextpnr router on ECP5 targets (default router2: router1 took over "
                        "half an hour without converging on the small preset on the 85F)")
    args = p.parse_args(argv)

    def progress(line: str):
        print(line, file=sys.stderr, flush=True)

    from hdl.verilog import UNITS, cached_verilog

    # One Verilog file per config for every run of this table, even if the RTL sources change
    # meanwhile: the rows stay comparable and the ECP5 targets share one yosys netlist.
    # With --reuse, a config keeps the RTL of its reused rows while that file is still in the
    # cache, so that a table finished in several runs describes one RTL per config.
    verilog = {}
    if args.reuse:
        for out in Path("build/fpga").glob("*/result.json"):
            old = json.loads(out.read_text())
            path = Path("build/rtl/verilog") / str(old.get("verilog"))
            if old.get("top") == "chip" and path.exists():
                verilog.setdefault(old["config"], path)

    def verilog_of(name: str) -> Path:
        if name not in verilog:
            verilog[name] = cached_verilog(get_config(name))
        return verilog[name]

    pairs = [_pair(p) for p in args.pairs] or [(c, t) for c in args.configs
                                                 for t in args.targets]
    if args.units is not None and not args.pairs:
        pairs = []  # only the unit tables
    rows = []
    for name, target in pairs:
        progress(f"== {name} on {target}")
        router = args.router if get_device(target).family.name == "ecp5" else None
        rows.append(run_one(name, target, lambda n=name: verilog_of(n), reuse=args.reuse,
                            timeout_s=args.timeout, progress=progress, router=router))
    docs = Path(args.docs)
    text = docs.read_text()
    body = markdown(rows)
    if args.pairs:
        i = text.find(BEGIN)
        body = merge_table(text[i + len(BEGIN):text.find(END)] if i >= 0 else "", body)
    if rows:
        text = replace_between(text, BEGIN, END, body)
    if args.breakdown:
        results = []
        for name, target in map(_pair, args.breakdown):
            progress(f"== {name} on {target}, per instance")
            r = run_one(name, target, lambda n=name: verilog_of(n), reuse=args.reuse,
                        hierarchy=True,
                        timeout_s=args.timeout, progress=progress)
            if "hierarchy" in r and r["hierarchy"]:
                results.append(r)
        text = replace_between(text, BREAKDOWN_BEGIN, BREAKDOWN_END,
                               breakdown_markdown(results))
    if args.units:
        results = []
        for name, target in map(_pair, args.units):
            router = args.router if get_device(target).family.name == "ecp5" else None
            for unit in UNITS[1:]:
                progress(f"== {name} on {target}, unit {unit}")
                results.append(run_one(name, target, None, reuse=args.reuse, top=unit,
                                       timeout_s=args.timeout, progress=progress,
                                       router=router, freq_mhz=args.units_freq))
        text = replace_between(text, UNITS_BEGIN, UNITS_END, units_markdown(results))
    docs.write_text(text)
    if rows:
        print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
