"""Reading what yosys and nextpnr report: resource counts, fit checks, Fmax, critical path.

Pure functions over the tools' outputs (yosys ``stat -json``, the yosys log, nextpnr's
``--report`` JSON and log), so that they can be tested on recorded files without running the
tools. :mod:`openlpu.fpga.synth` runs the tools and calls these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hdl.chip import CORE

from .devices import RESOURCES, Device, Family

__all__ = ["Overflow", "count_cells", "critical_path", "design_cells", "fmax",
           "hierarchy_breakdown", "instance_of_net", "nextpnr_counts", "nextpnr_error",
           "nextpnr_log_utilization", "nextpnr_version", "not_fit_message", "overflows",
           "unit_of_module", "yosys_counts", "yosys_driver_conflicts", "yosys_error",
           "yosys_version"]


@dataclass(frozen=True)
class Overflow:
    """A resource the design needs more of than the device has."""

    resource: str
    label: str
    needed: int
    available: int

    @property
    def percent(self) -> float:
        """Needed as a percentage of available."""
        return 100.0 * self.needed / self.available if self.available else float("inf")

    def __str__(self) -> str:
        return (f"{self.needed:,} {self.label} needed, {self.available:,} available "
                f"({self.percent:.0f} %)")


def count_cells(cells: dict[str, int], weights: dict[str, int]) -> int:
    """Weighted sum of the yosys cell counts ``cells`` (``weights`` as in
    :attr:`Family.yosys_cells`: a type ending in ``*`` matches every type with that prefix)."""
    total = 0
    for cell_type, n in cells.items():
        for pattern, weight in weights.items():
            if (cell_type == pattern
                    or (pattern.endswith("*") and cell_type.startswith(pattern[:-1]))):
                total += weight * n
                break
    return total


def design_cells(stat: dict) -> dict[str, int]:
    """Cell counts by type of the whole design (hierarchy multiplied out) in ``stat -json``."""
    try:
        return dict(stat["design"]["num_cells_by_type"])
    except (KeyError, TypeError):
        raise ValueError("yosys stat JSON has no design.num_cells_by_type") from None


def yosys_counts(stat: dict, family: Family) -> dict[str, int]:
    """Resource counts (keys of :data:`RESOURCES` but ``ios``) from yosys ``stat -json``."""
    cells = design_cells(stat)
    return {r: count_cells(cells, family.yosys_cells[r]) for r in RESOURCES if r != "ios"}


def yosys_version(log: str) -> str | None:
    """``Yosys 0.70 (git sha1 ...)`` from the head of a yosys log, without the compiler."""
    m = re.search(r"^\s*(Yosys \d[^\s(]*(?: \(git sha1 [0-9a-f]+)?)", log, re.MULTILINE)
    if m is None:
        return None
    return m.group(1) + (")" if "(" in m.group(1) else "")


def nextpnr_version(text: str) -> str | None:
    """``nextpnr-0.11.1`` from the output of ``nextpnr-* --version``."""
    m = re.search(r"\(Version ([^)\s]+)\)", text)
    return m.group(1) if m else None


def yosys_error(log: str) -> str | None:
    """The first ``ERROR:`` line of a yosys log."""
    m = re.search(r"^ERROR: (.*)$", log, re.MULTILINE)
    return m.group(1).strip() if m else None


def overflows(counts: dict[str, int], device: Device) -> list[Overflow]:
    """The resources in ``counts`` that exceed ``device``, in :data:`RESOURCES` order."""
    out = []
    for r in RESOURCES:
        if r in counts and counts[r] > device.available(r):
            out.append(Overflow(r, device.family.labels[r], counts[r], device.available(r)))
    return out


def not_fit_message(design: str, device: Device, over: list[Overflow]) -> str:
    """One line naming every resource that does not fit, e.g. ``ice40 preset does not fit
    ice40-up5k: 9,812 LUT4 needed, 5,280 available (186 %)``."""
    return f"{design} does not fit {device.name}: " + "; ".join(str(o) for o in over)


def nextpnr_counts(report: dict, family: Family) -> tuple[dict[str, int], dict[str, int]]:
    """Used and available counts of the resources nextpnr reports for ``family``.

    Returns ``(used, available)``, keyed by resource (only those with a nextpnr cell name),
    plus ``logic_cells`` for iCE40 (``ICESTORM_LC``: a LUT4 and/or a flip-flop each).
    """
    util = report.get("utilization")
    if not isinstance(util, dict):
        raise ValueError("nextpnr report has no utilization")
    names = dict(family.nextpnr_cells)
    if "ICESTORM_LC" in util:
        names["logic_cells"] = "ICESTORM_LC"
    used, available = {}, {}
    for key, name in names.items():
        if name not in util:
            raise ValueError(f"nextpnr report has no utilisation of {name}")
        used[key] = int(util[name]["used"])
        available[key] = int(util[name]["available"])
    return used, available


_UTIL_LINE = re.compile(r"^Info:\s+(?P<name>\w+):\s+(?P<used>\d+)/\s*(?P<avail>\d+)\s+\d+%",
                        re.MULTILINE)


def nextpnr_log_utilization(log: str) -> dict[str, tuple[int, int]]:
    """nextpnr's ``Device utilisation`` table from its log: name -> (used, available).

    nextpnr prints it before placing, so it is there even when placement fails.
    """
    return {m.group("name"): (int(m.group("used")), int(m.group("avail")))
            for m in _UTIL_LINE.finditer(log)}


def nextpnr_error(log: str) -> str | None:
    """The first ``ERROR:`` line of a nextpnr log."""
    m = re.search(r"^ERROR: (.*)$", log, re.MULTILINE)
    return m.group(1).strip() if m else None


def fmax(report: dict) -> dict[str, dict[str, float]]:
    """Per clock: ``{"achieved": MHz, "constraint": MHz}`` from nextpnr's report JSON."""
    return {clock: {"achieved": float(v["achieved"]), "constraint": float(v["constraint"])}
            for clock, v in report.get("fmax", {}).items()}


def unit_of_module(module: str, top_module: str) -> str:
    """The instance of the wrapped design a (hierarchical) yosys module belongs to.

    Amaranth names submodules ``<top>.<instance>[.<sub>...]``; the wrapper and the top module's
    own logic are ``wrapper`` and ``top``. Nets and cells of a flattened design carry the same
    path after the wrapper's ``dut.`` instance.
    """
    name = module.removeprefix("\\").strip()
    if name == top_module:
        return "top"
    if name.startswith(top_module + "."):
        path = _skip_core(name[len(top_module) + 1:].split("."))
        return path[0] if path else "top"
    return "wrapper"


def _skip_core(path: list[str]) -> list[str]:
    """``path`` below the chip's clock-domain wrapper instance (:data:`hdl.chip.CORE`), whose
    own logic counts as the top's: the units are one level further down."""
    return path[1:] if path and path[0] == CORE else path


def instance_of_net(net: str, instances: frozenset[str] | set[str]) -> str:
    """The design instance a net of the flattened netlist belongs to: nets inside the wrapped
    design are ``dut.<instance>.<signal>`` for a submodule in ``instances`` and
    ``dut.<signal>`` (the signal name may hold dots) for the top module's own logic."""
    parts = net.removeprefix("\\").split(".")
    if parts[0] != "dut" or len(parts) < 2:
        return "wrapper"
    parts = ["dut", *_skip_core(parts[1:])]
    return parts[1] if len(parts) > 2 and parts[1] in instances else "top"


def yosys_driver_conflicts(log: str) -> int:
    """How many ``Driver-driver conflict`` warnings a yosys log has."""
    return len(re.findall(r"^Warning: Driver-driver conflict", log, re.MULTILINE))


#: Nets that nextpnr creates itself (e.g. ``$nextpnr_CCU2C_437$CIN``, where an ECP5 carry
#: chain is split); they lie between two nets of the design and belong to no instance.
_TOOL_NETS = ("$nextpnr",)


def critical_path(report: dict, instances: frozenset[str] | set[str] = frozenset()
                  ) -> dict | None:
    """Summary of the slowest path nextpnr reports.

    Keys: ``clock``, ``delay_ns``, ``logic_ns``, ``routing_ns``, ``from_cell``, ``to_cell``,
    ``nets`` (net names along the path) and ``instances`` (the design instances those nets
    belong to, in path order, repeats removed; see :func:`instance_of_net`).
    """
    best = None
    for path in report.get("critical_paths", []):
        steps = path.get("path", [])
        delay = sum(float(s.get("delay", 0.0)) for s in steps)
        if steps and (best is None or delay > best[0]):
            best = (delay, path)
    if best is None:
        return None
    delay, path = best
    steps = path["path"]
    routing = sum(float(s.get("delay", 0.0)) for s in steps if s.get("type") == "routing")
    nets = [s["net"] for s in steps if s.get("net")]
    crossed: list[str] = []
    for net in nets:
        if net.startswith(_TOOL_NETS):
            continue  # made by the packer (a carry chain's feed-through): of no instance
        inst = instance_of_net(net, instances)
        if not crossed or crossed[-1] != inst:
            crossed.append(inst)
    return {
        "clock": path.get("from"),
        "delay_ns": round(delay, 3),
        "logic_ns": round(delay - routing, 3),
        "routing_ns": round(routing, 3),
        "from_cell": steps[0].get("from", {}).get("cell"),
        "to_cell": steps[-1].get("to", {}).get("cell"),
        "nets": nets,
        "instances": crossed,
    }


def hierarchy_breakdown(stat: dict, family: Family, top_module: str) -> dict[str, dict]:
    """Resources per instance of the wrapped design from a hierarchical (``-noflatten``)
    yosys ``stat -json``: instance -> {resource: count}, largest LUT users first.

    Every Amaranth submodule is its own Verilog module (one instance each), so summing the
    primitive cells of every module under an instance gives that instance's share.
    """
    per: dict[str, dict[str, int]] = {}
    for module, info in stat.get("modules", {}).items():
        cells = info.get("num_cells_by_type", {})
        unit = unit_of_module(module, top_module)
        acc = per.setdefault(unit, {r: 0 for r in RESOURCES if r != "ios"})
        for r in acc:
            acc[r] += count_cells(cells, family.yosys_cells[r])
    return dict(sorted(per.items(), key=lambda kv: (-kv[1]["luts"], kv[0])))
