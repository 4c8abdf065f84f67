"""OpenLPU RTL in Amaranth 0.5: the chip top and its units, parametrised by a ChipConfig.

Every unit imports its parameters from :mod:`openlpu.config`, its opcodes, field positions and
latencies from :mod:`openlpu.isa` and its arithmetic from :mod:`openlpu.fixedpoint`; nothing
here restates them. Timing follows docs/architecture.md exactly: the RTL must match the golden
model (:mod:`sim_models.golden`) cycle for cycle.

Superlanes are staggered physically: MEM and VXM units are built per superlane *tile*, and
tile ``k`` receives its queue's instruction through ``k`` pipeline registers, so it does
superlane 0's work ``k`` cycles later on its own lanes. Units that move data across superlanes
(MXM, SXM) see every superlane's stream registers; they deskew their inputs, compute on the full
vector and re-skew their outputs, which the ISA latencies budget for.
"""
