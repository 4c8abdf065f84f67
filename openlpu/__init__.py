"""OpenLPU: an open, parametrised RTL model of a Groq-style Tensor Streaming Processor.

This neutral package holds what every layer shares: the chip configuration
(:mod:`openlpu.config`), the instruction set (:mod:`openlpu.isa`), the bit-exact fixed-point
arithmetic of the vector unit (:mod:`openlpu.fixedpoint`) and the command-line interface.
The RTL (``hdl``), the golden model (``sim_models``) and the compiler (``firmware``) import
these definitions; none of them restates an opcode, a field or a latency.
"""

__version__ = "0.1.0"
