"""cocotb testbenches: the chip top's Verilog on Verilator and Icarus, against the golden model.

:mod:`tb.host` drives the host bus (load, start, wait, read back), :mod:`tb.chip_test` is the
cocotb test module, :mod:`tb.runner` builds and runs it from Python through
``cocotb_tools.runner``, and :mod:`tb.scoreboard` compares the result with the golden model.
"""
