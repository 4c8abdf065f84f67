"""Which MEM slices, streams and VXM ALUs serve which MXM plane in a lowered GEMM.

A plane at the west edge reads westward streams and sends its accumulators east to the VXM; an
east plane the other way round. Each plane gets:

- **feed slices** ``feeds[j]`` holding its weight rows ``j, j + c, j + 2c, ..`` of every tile,
  so that one ``LW`` loads ``c = len(feeds)`` rows at once, row ``j`` of the group on stream
  ``feed_base + j`` (all distinct, adjacent streams, as ``LW`` requires);
- **x slices** (feed slices that do not also write outputs) holding its rows of ``x``
  round-robin; every ``x`` vector travels on stream ``feed_base``. Values from different slices
  share that stream without conflict because each arrives in its own cycle, i.e. on its own
  diagonal, and no one else writes that stream between them and the plane;
- **writer slices** (one per output byte) catching its ``REQ`` results;
- a preference order of **VXM ALUs** (one for ``REQ``; one to keep the requantisation
  multiplier circulating, see :mod:`firmware.lower.scheduler`).

If planes sit in both hemispheres, a plane's slices come from its own hemisphere, so the two
sides never compete for a slice; with one plane, every slice feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass

from openlpu.config import ChipConfig, SliceKind

from .errors import LoweringError

__all__ = ["PlaneRoles", "RolePlan", "plan_roles"]

WEST, EAST = 1, 0  # stream direction codes (isa.Direction values)


@dataclass(frozen=True)
class PlaneRoles:
    """The slices, streams and ALUs serving one MXM plane (see the module docstring)."""

    plane: int
    queue: str
    position: int
    #: Direction of the streams that carry x and weights into the plane.
    feed_dir: int
    #: Direction of the accumulator results on their way to the VXM.
    acc_dir: int
    feeds: tuple[str, ...]
    feed_base: int
    x_slices: tuple[str, ...]
    writers: tuple[str, ...]
    alus: tuple[str, ...]


@dataclass(frozen=True)
class RolePlan:
    """Roles of every slice for one lowering variant."""

    variant: str
    planes: tuple[PlaneRoles, ...]
    #: Groups of 4 MEM slices on one side of the VXM that can each send one byte of the int32
    #: multiplier straight to it (byte k from slice k).
    mult_sources: tuple[tuple[str, ...], ...]
    #: ``(sxm, 4 slices)``: the slices send the multiplier to the SXM, which turns it round to
    #: the VXM (for chips with fewer than 4 MEM slices on each side of the VXM).
    relays: tuple[tuple[str, tuple[str, ...]], ...]
    #: Keep the multiplier circulating through a VXM ALU (``MOV`` every cycle) instead of
    #: reading it from SRAM for every ``REQ``.
    use_ring: bool


def plan_roles(config: ChipConfig, planes: int, out_bytes: int, *,
               dedicated_writer: bool = False, use_ring: bool | None = None) -> RolePlan:
    """Roles for a GEMM on the first ``planes`` MXM planes with ``out_bytes``-byte outputs.

    Parameters
    ----------
    dedicated_writer : bool
        Keep the writer slices out of the weight feed (one fewer row per ``LW``, but the
        output writes never compete with weight reads for a slice).
    use_ring : bool, optional
        Circulate the multiplier through a VXM ALU; default: if there are two ALUs per plane.

    Raises
    ------
    LoweringError
        Too few MEM slices on one side of the VXM for the output's byte group.
    """
    v = config.slice_by_name["vxm"].position
    n = config.mem_slices_per_hemisphere
    west = [f"mem_w{i}" for i in range(n)]  # nearest the VXM first
    east = [f"mem_e{i}" for i in range(n)]
    pos = {s.name: s.position for s in config.slices}
    S, L = config.streams_per_direction, config.lanes  # noqa: N806
    V = config.vxm_alus_per_lane  # noqa: N806
    if use_ring is None:
        use_ring = V >= 2 * planes
    if out_bytes > n:
        raise LoweringError(
            f"a {8 * out_bytes}-bit output is written by {out_bytes} MEM slices on one side of "
            f"the VXM; config {config.name!r} has {n} per side")
    plane_ids = list(range(planes))
    west_planes = [p for p in plane_ids if p % 2 == 0]
    east_planes = [p for p in plane_ids if p % 2 == 1]
    pools: dict[int, list[str]] = {}
    if not east_planes:
        for p in west_planes:
            pools[p] = []
        for i, s in enumerate(west + east):
            pools[west_planes[i % len(west_planes)]].append(s)
    else:
        for side, ps in ((west, west_planes), (east, east_planes)):
            for p in ps:
                pools[p] = []
            for i, s in enumerate(side):
                pools[ps[i % len(ps)]].append(s)
    out = []
    used_streams = {WEST: 0, EAST: 0}
    for p in plane_ids:
        q = config.slice_by_name[f"mxm{p}"].position
        feed_dir = WEST if q < v else EAST
        acc_dir = EAST if feed_dir == WEST else WEST
        pool = pools[p]
        # Writers next to the VXM keep the REQ results' trip short. A plane fed from both
        # hemispheres writes on the far side, where no weight or x stream crosses the VXM.
        sides = [[s for s in pool if s.startswith("mem_e")], [s for s in pool
                                                               if s.startswith("mem_w")]]
        if feed_dir == EAST:
            sides.reverse()
        sides.sort(key=lambda side: len(side) < out_bytes)
        side = sorted(sides[0], key=lambda s: abs(pos[s] - v))
        if len(side) < out_bytes:
            raise LoweringError(
                f"MXM plane {p} has {len(side)} MEM slice(s) on one side of the VXM; a "
                f"{8 * out_bytes}-bit output needs {out_bytes}")
        writers = tuple(side[:out_bytes])
        feeds = [s for s in pool if not (dedicated_writer and s in writers)]
        sharing = len(west_planes) if feed_dir == WEST else len(east_planes)
        c = min(len(feeds), L, S // sharing)
        if c < 1:
            raise LoweringError(f"MXM plane {p} has no MEM slice left to feed it weights")
        # the rows nearest the plane arrive soonest; slices next to the VXM stay freer for
        # the multiplier and the outputs
        feeds = sorted(feeds, key=lambda s: abs(pos[s] - q))[:c]
        x_slices = [s for s in feeds if s not in writers] or feeds
        base = used_streams[feed_dir]
        used_streams[feed_dir] += c
        order = [f"vxm{(2 * p + k) % V}" for k in range(V)]
        alus = tuple(dict.fromkeys(order))
        out.append(PlaneRoles(p, f"mxm{p}", q, feed_dir, acc_dir, tuple(feeds), base,
                              tuple(x_slices), writers, alus))
    mult_sources = []
    for side in (west, east):
        for k in range(0, len(side) - 3, 4):
            mult_sources.append(tuple(side[k:k + 4]))
    relays = []
    if not mult_sources and config.sxm:
        for sxm in ("sxm_e", "sxm_w"):
            x = pos[sxm]
            up = [s.name for s in config.slices if s.kind is SliceKind.MEM]
            up.sort(key=lambda s: abs(pos[s] - x))
            if len(up) >= 4:
                relays.append((sxm, tuple(up[:4])))
    variant = (f"{'dedicated' if dedicated_writer else 'shared'} writer, "
               f"{'ring' if use_ring else 'direct'} multiplier, "
               f"{'/'.join(str(len(r.feeds)) for r in out)} rows per LW")
    return RolePlan(variant, tuple(out), tuple(mult_sources), tuple(relays), use_ring)
