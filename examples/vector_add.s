; vector_add.s - saturating int8 vector add, streamed, on the ecp5 preset.
;
; Eight 16-lane vectors a[i] (mem_w0) and b[i] (mem_e0) meet in the VXM, which writes
; a[i] +sat b[i] to mem_e1. Every issue cycle follows from the floorplan and the latencies:
;
;   positions (ecp5):  ... mem_w0=5 | vxm=6 | mem_e0=7 | mem_e1=8 ...
;   READ  latency 2:   issued cycle 0 at mem_w0 -> present at 5 in cycle 2 -> at vxm in 3
;                      issued cycle 0 at mem_e0 -> present at 7 in cycle 2 -> at vxm in 3
;   ADDS  latency 4:   issued cycle 3 at vxm    -> present at 6 in cycle 7 -> at mem_e1 in 9
;                      (2 on sim; ecp5 has the deep FPGA pipeline, vxm_deep_pipeline)
;   WRITE:             issued cycle 9 at mem_e1, reads E1 in that cycle
;
; Each queue repeats its instruction 7 more times, one cycle apart, stepping the address.

.config ecp5
.equ N, 8                 ; vectors
.equ A, E0                ; eastbound from mem_w0
.equ B, W0                ; westbound from mem_e0
.equ SUM, E1              ; eastbound from the VXM

.queue mem_w0
    READ    A, b0:0
    REPEAT  N-1, 1, 1
.queue mem_e0
    READ    B, b0:0
    REPEAT  N-1, 1, 1
.queue vxm0
    NOP     3
    ADDS.i8 SUM, A, B
    REPEAT  N-1, 1
.queue mem_e1
    NOP     9
    WRITE   b1:0, SUM
    REPEAT  N-1, 1, 1

.data mem_w0, b0:0
    .vec   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,  15,  16
    .vec 127, 127, 127, 127, -128, -128, -128, -128, 0, 0, 0, 0, 100, -100, 50, -50
    .vec -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -13, -14, -15, -16
    .fill 5, 7
.data mem_e0, b0:0
    .vec  10,  20,  30,  40,  50,  60,  70,  80,  90, 100, 110, 120, 117, 116, 115, 114
    .vec   1,  -1, 127, -128, 1, -1, 127, -128, 1, -1, 127, -128, 100, -100, 100, -100
    .vec   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,  15,  16
    .fill 5, -3

.output sum, mem_e1, b1:0, N
