"""Block RAMs whose read and write ports never address one word in the same cycle.

A synchronous read port that an Amaranth memory gives returns the old word when the write port
writes the word it reads in the same cycle. The iCE40 and ECP5 block RAMs do not promise that,
so yosys builds it around them: a registered copy of the write, an address compare and a
bypass multiplexer as wide as the word. Where the design never lets the two ports collide, the
memory carries the yosys attribute :data:`NO_RW_CHECK` ("don't care on collision") and yosys
builds none of it.

Yosys's ``memory_dff`` applies the attribute to a read port it merges with its output register
itself, which is how Amaranth's Verilog reaches it (``openlpu synth`` reads that). Amaranth's
RTLIL, which its platform builds read (``openlpu build``), has the ports already merged, so
those builds run :data:`NO_RW_CHECK_YOSYS` after reading the design.
"""

__all__ = ["NO_RW_CHECK", "NO_RW_CHECK_YOSYS"]

#: ``Memory(attrs=...)`` of a memory with one read port and one write port that never collide.
NO_RW_CHECK = {"no_rw_check": 1}

#: Yosys commands that mark the read port of every memory with :data:`NO_RW_CHECK` "don't care
#: on collision" (the mask has one bit per read and write port pair: one here).
NO_RW_CHECK_YOSYS = (
    "memory_collect",
    "setparam -set RD_COLLISION_X_MASK 1'1 t:$mem_v2 a:no_rw_check %i",
)
