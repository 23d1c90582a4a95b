"""Register-blocked multiply-accumulate kernels, written as LLVM IR and compiled with llvmlite.

A BLAS multiplies matrices it is given; a convolution has to build its column matrix first (im2col:
one copy of every input pixel per kernel tap) and hand it over. For the shapes of a small CNN the
BLAS then runs well below the machine's speed: OpenBLAS multiplies mnist_cnn's (N·24·24, 288) columns
by the (288, 64) kernel at 122 GFLOP/s on one core of this project's machine, where the same loop
nest written here runs at 151 (measured; MKL's own kernel reaches 155).

:func:`window_product` is that loop nest reading the input in place (an implicit im2col): the output
pixels are taken ``ROWS`` at a time, and for each block of ``VECTORS`` SIMD vectors of filters the
``ROWS × VECTORS`` accumulators stay in registers while the reduction runs over the kernel's taps
and channels — each step broadcasts one input value per pixel and multiplies it with the kernel
row's vectors (fused multiply-adds). A window's taps are read as segments of contiguous values
(``seg_len`` each, e.g. a kernel row's kw·C values of a channels-last input), so the only index
arithmetic is per segment. The bias and a relu are added before the accumulators are stored. The
same loop nest gives the convolution's gradients (``shenjing.autodiff.conv``): the input gradient
is the padded output gradient convolved with the flipped kernel, and the kernel gradient has the
kernel's (tap, channel)s for rows, each reading its input value at every output pixel (a ``step``
apart), with the output gradient's rows for the kernel matrix, added into the partial sum.

The IR is built with ``llvmlite.ir`` (llvmlite comes with numba: the compiled path's one
dependency), compiled once per process for the host CPU (0.1 s, at the first convolution that
takes it) and called through ctypes, which releases the GIL, so :mod:`..parallel` runs calls on
sample blocks side by side. The kernels are float32 and meant for CPUs with AVX-512
(:func:`suited`): with 16-lane vectors, 6 × 4 accumulators fill 24 of the 32 vector registers;
elsewhere LLVM would split the vectors and spill, and the callers keep their BLAS path. Measured
on mnist_cnn's second convolution, one core, 1,000 samples: 145–170 GFLOP/s with the bias and relu,
against OpenBLAS's 118–122 for the column matrix's product alone (whose building adds 20 ms).

The same register blocking runs an LSTM's steps (:func:`lstm_forward`, :func:`lstm_backward`): a
step's recurrent product h·R is small (char-LSTM: 64 × 256 × 1,024), and a BLAS splits it over the
cores step by step (OpenBLAS, two threads: 141 µs, against MKL's 103), while the gate math around it
runs on one core. Here each thread owns a share of the units for the whole sequence, so its columns
of R (the four gates of 16 units side by side in a panel, :func:`lstm_panels`) stay in its core's
cache, and the threads meet at a spin barrier after each step (:func:`_barrier`). The forward's
accumulators hold the four gates of 16 units for 6 rows, so the gates, the cell and h are finished in
registers (a SIMD tanh of its own, :func:`_tanh_ir`); the backward computes its units' gate gradients,
then their share of the next step's h gradient (d·Rᵀ over its own columns), which the threads sum.
"""

from __future__ import annotations

import ctypes
import threading

import llvmlite.binding as llvm
import llvmlite.ir as ir
import numpy as np

from .. import aligned_empty

LANES = 16
"""float32 values in one SIMD vector (AVX-512)."""

ROWS = 6
"""Output pixels per register block."""

VECTORS = 4
"""SIMD vectors of output channels per register block (64 channels); narrower remainders take
blocks of one vector."""

_F32, _I64, _I32 = ir.FloatType(), ir.IntType(64), ir.IntType(32)
_VEC = ir.VectorType(_F32, LANES)
_state: dict = {"engine": None, "functions": {}}
_lock = threading.Lock()  # one compilation: the first calls may come from several threads at once


def suited() -> bool:
    """Whether the host CPU has the 512-bit vectors the blocking is made for (AVX-512F)."""
    return "+avx512f" in host_features()


def host_features() -> frozenset:
    """The host CPU's features as LLVM names them (``+avx512f``, ``+amx-bf16``, …; asked once: ~0.15 ms)."""
    if "features" not in _state:
        _init()
        _state["features"] = frozenset(llvm.get_host_cpu_features().flatten().split(","))
    return _state["features"]


def _init() -> None:
    if _state.get("initialized"):
        return
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    _state["initialized"] = True


def _const(value: int):
    return ir.Constant(_I64, value)


def _loop(b, start, stop, carried, body):
    """A counted loop ``for i in range(start, stop)`` carrying the values ``carried`` (SSA phis):
    ``body(i, values) -> new values``; returns the values after the loop (``carried`` when it runs
    no iteration)."""
    fn = b.function
    before = b.block
    head, after = fn.append_basic_block("loop"), fn.append_basic_block("after")
    b.cbranch(b.icmp_signed("<", start, stop), head, after)
    b.position_at_end(head)
    i = b.phi(_I64)
    i.add_incoming(start, before)
    phis = []
    for value in carried:
        phi = b.phi(value.type)
        phi.add_incoming(value, before)
        phis.append(phi)
    new = body(i, phis)
    latch = b.block
    i_next = b.add(i, _const(1))
    i.add_incoming(i_next, latch)
    for phi, value in zip(phis, new):
        phi.add_incoming(value, latch)
    b.cbranch(b.icmp_signed("<", i_next, stop), head, after)
    b.position_at_end(after)
    out = []
    for value, value_new in zip(carried, new):
        phi = b.phi(value.type)
        phi.add_incoming(value, before)
        phi.add_incoming(value_new, latch)
        out.append(phi)
    return out


def _vector_at(b, base, offset):
    """A pointer to the SIMD vector at float ``base`` + ``offset`` (any alignment)."""
    return b.bitcast(b.gep(base, [offset]), _VEC.as_pointer())


def _broadcast(b, scalar, vector_type=_VEC):
    """``scalar`` in every lane of a ``vector_type`` vector (float32 by default)."""
    lanes = b.insert_element(ir.Constant(vector_type, ir.Undefined), scalar, ir.Constant(_I32, 0))
    return b.shuffle_vector(lanes, ir.Constant(vector_type, ir.Undefined),
                            ir.Constant(ir.VectorType(_I32, vector_type.count), [0] * vector_type.count))


def _product_ir(module, fma, name, unit_step):
    """void name(x, sample_stride, samples, pixel_offsets, pixels, segment_offsets, segments, seg_len,
    step, w, f, bias, relu, accumulate, out, out_sample_stride) — see :func:`window_product`; with
    ``unit_step`` the function reads a segment's values one after another (``step`` unused)."""
    fp, ip = _F32.as_pointer(), _I64.as_pointer()
    signature = ir.FunctionType(ir.VoidType(), [fp, _I64, _I64, ip, _I64, ip, _I64, _I64, _I64, fp, _I64, fp, _I64,
                                                _I64, fp, _I64])
    fn = ir.Function(module, signature, name)
    (x, sample_stride, samples, pix_off, pixels, seg_off, segments, seg_len, step, w, f, bias, relu, accumulate, out,
     out_stride) = fn.args
    for pointer in (x, pix_off, seg_off, w, bias, out):
        pointer.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    zero = ir.Constant(_VEC, [0.0] * LANES)
    do_relu = b.icmp_signed("!=", relu, _const(0))
    do_add = b.icmp_signed("!=", accumulate, _const(0))
    blocks = b.sdiv(b.add(pixels, _const(ROWS - 1)), _const(ROWS))
    last = b.sub(pixels, _const(1))

    def sample_body(s, _):
        xs = b.gep(x, [b.mul(s, sample_stride)])
        outs = b.gep(out, [b.mul(s, out_stride)])

        def block_body(blk, _):
            p0 = b.mul(blk, _const(ROWS))
            rows = []
            for r in range(ROWS):  # a block past the last pixel repeats the last one (not stored)
                p = b.add(p0, _const(r))
                p = b.select(b.icmp_signed(">", p, last), last, p)
                rows.append(b.gep(xs, [b.load(b.gep(pix_off, [p]))]))

            def columns(col, vectors):
                """The ROWS × ``vectors`` block of output channels from ``col``: reduce, then store."""

                def segment_body(seg, acc):
                    x_off = b.load(b.gep(seg_off, [seg]))
                    k0 = b.mul(seg, seg_len)
                    row_ptrs = [b.gep(ptr, [x_off]) for ptr in rows]

                    def tap_body(j, acc):
                        w_row = b.gep(w, [b.add(b.mul(b.add(k0, j), f), col)])
                        wv = [b.load(_vector_at(b, w_row, _const(LANES * v)), align=4) for v in range(vectors)]
                        at = j if unit_step else b.mul(j, step)
                        new = []
                        for r in range(ROWS):
                            a = _broadcast(b, b.load(b.gep(row_ptrs[r], [at]), align=4))
                            new.extend(b.call(fma, [a, wv[v], acc[r * vectors + v]]) for v in range(vectors))
                        return new

                    return _loop(b, _const(0), seg_len, acc, tap_body)

                acc = _loop(b, _const(0), segments, [zero] * (ROWS * vectors), segment_body)
                bias_v = [b.load(_vector_at(b, bias, b.add(col, _const(LANES * v))), align=4) for v in range(vectors)]
                for r in range(ROWS):
                    with b.if_then(b.icmp_signed("<", b.add(p0, _const(r)), pixels)):
                        row_out = b.gep(outs, [b.add(b.mul(b.add(p0, _const(r)), f), col)])
                        for v in range(vectors):
                            target = _vector_at(b, row_out, _const(LANES * v))
                            value = b.fadd(acc[r * vectors + v], bias_v[v])
                            value = _relu_if(b, value, do_relu, zero)
                            value = b.select(do_add, b.fadd(b.load(target, align=4), value), value)
                            b.store(value, target, align=4)

            _column_panels(b, f, columns)
            return []

        _loop(b, _const(0), blocks, [], block_body)
        return []

    _loop(b, _const(0), samples, [], sample_body)
    b.ret_void()


def _column_panels(b, width, columns):
    """``columns(col, vectors)`` over ``width`` columns (a multiple of :data:`LANES`): panels of
    :data:`VECTORS` vectors, then the narrower rest (1 to VECTORS − 1 vectors) if there is one."""
    wide = b.sdiv(width, _const(LANES * VECTORS))
    wide_end = b.mul(wide, _const(LANES * VECTORS))

    def wide_body(panel, _):
        columns(b.mul(panel, _const(LANES * VECTORS)), VECTORS)
        return []

    _loop(b, _const(0), wide, [], wide_body)
    remainder = b.sdiv(b.sub(width, wide_end), _const(LANES))
    for vectors in range(1, VECTORS):
        with b.if_then(b.icmp_signed("==", remainder, _const(vectors))):
            columns(wide_end, vectors)


def _relu_if(b, value, do_relu, zero):
    """``value`` with its negative lanes zeroed when ``do_relu`` (NaN kept, as NumPy's maximum)."""
    clipped = b.select(b.fcmp_ordered("<", value, zero), zero, value)
    return b.select(do_relu, clipped, value)


TANH_LIMIT = 9.0
"""|x| beyond which the kernels' tanh is its value at ±9, which rounds to ±1 (1 − tanh(9) = 3.0e-8)."""

_TANH_P = (0.9999999934366993, 0.1308402163370764, 0.0031039687552122234, 1.1154429128852651e-05,
           -2.0225649149551038e-08, 5.278114770945258e-11, -8.489045081816061e-14)
_TANH_Q = (1.0, 0.4641734875118166, 0.024495229287627443, 0.00025461628912145306)
"""tanh(x) ≈ x·P(x²)/Q(x²) on [−9, 9], coefficients from the lowest power up: fitted for this project
(an iteratively reweighted least-squares fit of the relative error, in float64). Evaluated in float32
it is within 6 ulp of tanh (3.6e-7 absolute); NumPy's float32 tanh is within 1.4 ulp."""


def _splat(value, vector_type=_VEC):
    """The constant vector with ``value`` in every lane (float32 by default)."""
    if isinstance(vector_type.element, ir.FloatType):
        value = float(value)
    return ir.Constant(vector_type, [value] * vector_type.count)


def _tanh_ir(b, fma, x):
    """The SIMD tanh of the vector ``x`` (see :data:`_TANH_P`); NaN stays NaN, ±inf gives ±1."""
    limit, one = _splat(TANH_LIMIT), _splat(1.0)
    x = b.select(b.fcmp_ordered(">", x, limit), limit, x)
    x = b.select(b.fcmp_ordered("<", x, _splat(-TANH_LIMIT)), _splat(-TANH_LIMIT), x)
    z = b.fmul(x, x)

    def horner(coefficients):
        acc = _splat(coefficients[-1])
        for c in coefficients[-2::-1]:
            acc = b.call(fma, [acc, z, _splat(c)])
        return acc

    r = b.fdiv(b.fmul(x, horner(_TANH_P)), horner(_TANH_Q))
    r = b.select(b.fcmp_ordered(">", r, one), one, r)
    return b.select(b.fcmp_ordered("<", r, _splat(-1.0)), _splat(-1.0), r)


def _intrinsic(module, name, return_type, arguments=()):
    existing = module.globals.get(name)
    return existing or ir.Function(module, ir.FunctionType(return_type, list(arguments)), name)


def _barrier(b, counter, target):
    """Arrive at a barrier of the threads that share ``counter`` (add one to ``counter[0]``), then spin
    until it reaches ``target``, yielding the core every 256 polls (a thread descheduled by another gets
    it). A nonzero ``counter[1]`` (the run was called off: a party will never come) makes the function
    return 1 at once."""
    b.atomic_rmw("add", counter, _const(1), "seq_cst")
    x86 = b.module.triple.startswith(("x86_64", "i686", "i386"))
    pause = _intrinsic(b.module, "llvm.x86.sse2.pause", ir.VoidType()) if x86 else None  # a spin-wait hint
    yield_ = _intrinsic(b.module, "sched_yield", _I32)
    fn, before = b.function, b.block
    check, spin, give, back, quit_, done = (fn.append_basic_block(name)
                                            for name in ("wait", "spin", "yield", "pause", "quit", "go"))
    b.branch(check)
    b.position_at_end(check)
    polls = b.phi(_I64)
    polls.add_incoming(_const(0), before)
    arrived = b.load_atomic(counter, "acquire", 8)
    b.cbranch(b.icmp_signed(">=", arrived, target), done, spin)
    b.position_at_end(spin)
    polls_next = b.add(polls, _const(1))
    b.cbranch(b.icmp_signed("==", b.and_(polls_next, _const(255)), _const(0)), give, back)
    b.position_at_end(give)
    b.call(yield_, [])
    called_off = b.load_atomic(b.gep(counter, [_const(1)]), "acquire", 8)
    b.cbranch(b.icmp_signed("!=", called_off, _const(0)), quit_, back)
    b.position_at_end(quit_)
    b.ret(_const(1))
    b.position_at_end(back)
    if pause is not None:
        b.call(pause, [])
    polls.add_incoming(polls_next, back)
    b.branch(check)
    b.position_at_end(done)


def _lstm_forward_ir(module, fma, name):
    """i64 name(h, c, tc, a, proj, proj_offsets, index, panels, n, u, t, first, stop, counter, parties)
    — see :func:`lstm_forward`; returns 0, or 1 when the run was called off (:func:`_barrier`)."""
    fp, ip = _F32.as_pointer(), _I64.as_pointer()
    signature = ir.FunctionType(_I64, [fp, fp, fp, fp, fp, ip, ip, fp] + [_I64] * 5 + [ip, _I64])
    fn = ir.Function(module, signature, name)
    h, c, tc, a, proj, proj_off, index, panels, n, u, t, first, stop, counter, parties = fn.args
    for pointer in (proj_off, index, panels):  # not proj: the gates may be written over it (``a`` is ``proj``)
        pointer.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    zero, half = _splat(0.0), _splat(0.5)
    nu = b.mul(n, u)
    width = b.mul(u, _const(4))
    panel_size = b.mul(u, _const(LANES * 4))
    blocks = b.sdiv(b.add(n, _const(ROWS - 1)), _const(ROWS))
    last = b.sub(n, _const(1))

    def step_body(s, _):
        h_prev, h_next = b.gep(h, [b.mul(s, nu)]), b.gep(h, [b.mul(b.add(s, _const(1)), nu)])
        c_prev, c_next = b.gep(c, [b.mul(s, nu)]), b.gep(c, [b.mul(b.add(s, _const(1)), nu)])
        tc_s = b.gep(tc, [b.mul(s, nu)])
        a_s = b.gep(a, [b.mul(b.load(b.gep(index, [s])), b.mul(n, width))])
        offsets = b.gep(proj_off, [b.mul(s, n)])

        def panel_body(p, _):
            panel = b.gep(panels, [b.mul(p, panel_size)])
            col = b.mul(p, _const(LANES))  # the panel's first unit

            def block_body(blk, _):
                r0 = b.mul(blk, _const(ROWS))
                rows = []
                for r in range(ROWS):  # a block past the last row repeats it (not stored)
                    row = b.add(r0, _const(r))
                    rows.append(b.select(b.icmp_signed(">", row, last), last, row))
                h_rows = [b.gep(h_prev, [b.mul(row, u)]) for row in rows]

                def k_body(k, acc):
                    wv = [b.load(_vector_at(b, panel, b.add(b.mul(k, _const(LANES * 4)), _const(LANES * q))), align=4)
                          for q in range(4)]
                    new = []
                    for r in range(ROWS):
                        x = _broadcast(b, b.load(b.gep(h_rows[r], [k]), align=4))
                        new.extend(b.call(fma, [x, wv[q], acc[r * 4 + q]]) for q in range(4))
                    return new

                acc = _loop(b, _const(0), u, [zero] * (ROWS * 4), k_body)
                for r in range(ROWS):
                    row = b.add(r0, _const(r))
                    with b.if_then(b.icmp_signed("<", row, n)):
                        source = b.gep(proj, [b.add(b.load(b.gep(offsets, [row])), col)])
                        gates_row = b.gep(a_s, [b.add(b.mul(row, width), col)])
                        inputs = [b.load(_vector_at(b, source, b.mul(u, _const(q))), align=4) for q in range(4)]
                        tanh = [_tanh_ir(b, fma, b.fadd(acc[r * 4 + q], inputs[q])) for q in range(4)]
                        i, f, o = (b.call(fma, [tanh[q], half, half]) for q in (0, 1, 3))
                        g = tanh[2]
                        for q, gate in enumerate((i, f, g, o)):
                            b.store(gate, _vector_at(b, gates_row, b.mul(u, _const(q))), align=4)
                        at = b.add(b.mul(row, u), col)
                        cell = b.fadd(b.fmul(f, b.load(_vector_at(b, c_prev, at), align=4)), b.fmul(i, g))
                        b.store(cell, _vector_at(b, c_next, at), align=4)
                        squashed = _tanh_ir(b, fma, cell)
                        b.store(squashed, _vector_at(b, tc_s, at), align=4)
                        b.store(b.fmul(o, squashed), _vector_at(b, h_next, at), align=4)
                return []

            _loop(b, _const(0), blocks, [], block_body)
            return []

        _loop(b, first, stop, [], panel_body)
        _barrier(b, counter, b.mul(b.add(s, _const(1)), parties))
        return []

    _loop(b, _const(0), t, [], step_body)
    b.ret(_const(0))


def _lstm_backward_ir(module, fma, name):
    """i64 name(g, g_row, g_step, a, tc, c, dz, gc, partials, slots, index, transposed, n, u, t, first, stop,
    slot, counter, parties) — see :func:`lstm_backward`; returns 0, or 1 when the run was called off."""
    fp, ip = _F32.as_pointer(), _I64.as_pointer()
    signature = ir.FunctionType(_I64, [fp, _I64, _I64, fp, fp, fp, fp, fp, fp, _I64, ip, fp]
                                + [_I64] * 6 + [ip, _I64])
    fn = ir.Function(module, signature, name)
    (g, g_row, g_step, a, tc, c, dz, gc, partials, slots, index, transposed, n, u, t, first, stop, slot, counter,
     parties) = fn.args
    for pointer in (g, a, tc, c, index, transposed):
        pointer.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    zero, one = _splat(0.0), _splat(1.0)
    nu = b.mul(n, u)
    width = b.mul(u, _const(4))
    blocks = b.sdiv(b.add(n, _const(ROWS - 1)), _const(ROWS))
    last = b.sub(n, _const(1))
    segments = b.mul(b.sub(stop, first), _const(4))  # (panel, gate) runs of 16 columns of d

    def vec(pointer, offset):
        return _vector_at(b, pointer, offset)

    def step_body(j, _):
        s = b.sub(b.sub(t, _const(1)), j)
        ix = b.load(b.gep(index, [s]))
        parity = b.and_(j, _const(1))
        incoming = b.gep(partials, [b.mul(b.mul(parity, slots), nu)])
        outgoing = b.gep(partials, [b.mul(b.add(b.mul(b.sub(_const(1), parity), slots), slot), nu)])
        a_s, dz_s = b.gep(a, [b.mul(ix, b.mul(n, width))]), b.gep(dz, [b.mul(ix, b.mul(n, width))])
        tc_s, c_s = b.gep(tc, [b.mul(s, nu)]), b.gep(c, [b.mul(s, nu)])

        def row_body(r, _):
            def panel_body(p, _):
                col = b.mul(p, _const(LANES))
                at = b.add(b.mul(r, u), col)

                def add_part(k, acc):
                    return [b.fadd(acc[0], b.load(vec(b.gep(incoming, [b.mul(k, nu)]), at), align=4))]

                h_grad = _loop(b, _const(1), parties, [b.load(vec(incoming, at), align=4)], add_part)[0]
                h_grad = b.fadd(h_grad, b.load(vec(g, b.add(b.add(b.mul(r, g_row), b.mul(s, g_step)), col)), align=4))
                gates_at = b.add(b.mul(r, width), col)
                i, f, gg, o = (b.load(vec(a_s, b.add(gates_at, b.mul(u, _const(q)))), align=4) for q in range(4))
                squashed = b.load(vec(tc_s, at), align=4)
                dc = b.fadd(b.fmul(b.fmul(h_grad, o), b.fsub(one, b.fmul(squashed, squashed))),
                            b.load(vec(gc, at), align=4))
                d = (b.fmul(b.fmul(dc, gg), b.fmul(b.fsub(one, i), i)),
                     b.fmul(b.fmul(dc, b.load(vec(c_s, at), align=4)), b.fmul(b.fsub(one, f), f)),
                     b.fmul(b.fmul(dc, i), b.fadd(b.fmul(b.fsub(one, gg), gg), b.fsub(one, gg))),
                     b.fmul(b.fmul(h_grad, squashed), b.fmul(b.fsub(one, o), o)))
                for q in range(4):
                    b.store(d[q], vec(dz_s, b.add(gates_at, b.mul(u, _const(q)))), align=4)
                b.store(b.fmul(dc, f), vec(gc, at), align=4)
                return []

            _loop(b, first, stop, [], panel_body)
            return []

        _loop(b, _const(0), n, [], row_body)

        def block_body(blk, _):  # the partial h gradient: d (own columns) · Rᵀ (their rows)
            r0 = b.mul(blk, _const(ROWS))
            rows = []
            for r in range(ROWS):
                row = b.add(r0, _const(r))
                rows.append(b.gep(dz_s, [b.mul(b.select(b.icmp_signed(">", row, last), last, row), width)]))

            def columns(col, vectors):
                panel = b.gep(transposed, [b.mul(col, width)])  # (4·u, 16·vectors), after `col` columns' panels

                def segment_body(seg, acc):
                    p, q = b.add(first, b.sdiv(seg, _const(4))), b.srem(seg, _const(4))
                    d_off = b.add(b.mul(q, u), b.mul(p, _const(LANES)))
                    k0 = b.add(b.mul(p, _const(4 * LANES)), b.mul(q, _const(LANES)))
                    row_ptrs = [b.gep(ptr, [d_off]) for ptr in rows]

                    def k_body(kk, acc):
                        w_row = b.gep(panel, [b.mul(b.add(k0, kk), _const(LANES * vectors))])
                        wv = [b.load(vec(w_row, _const(LANES * v)), align=4) for v in range(vectors)]
                        new = []
                        for r in range(ROWS):
                            x = _broadcast(b, b.load(b.gep(row_ptrs[r], [kk]), align=4))
                            new.extend(b.call(fma, [x, wv[v], acc[r * vectors + v]]) for v in range(vectors))
                        return new

                    return _loop(b, _const(0), _const(LANES), acc, k_body)

                acc = _loop(b, _const(0), segments, [zero] * (ROWS * vectors), segment_body)
                for r in range(ROWS):
                    row = b.add(r0, _const(r))
                    with b.if_then(b.icmp_signed("<", row, n)):
                        target = b.gep(outgoing, [b.add(b.mul(row, u), col)])
                        for v in range(vectors):
                            b.store(acc[r * vectors + v], vec(target, _const(LANES * v)), align=4)

            _column_panels(b, u, columns)
            return []

        _loop(b, _const(0), blocks, [], block_body)
        _barrier(b, counter, b.mul(b.add(j, _const(1)), parties))
        return []

    _loop(b, _const(0), t, [], step_body)
    b.ret(_const(0))


_FUNCTIONS = {"contiguous": True, "strided": False}
"""The compiled functions: name -> whether it reads a segment's values one after another."""


def prepare() -> bool:
    """Compile the kernels now (once per process), not at their first call; returns whether they are
    usable (an llvmlite without the new pass manager, before 0.44, cannot build them: the callers then
    keep their BLAS path). Where the LSTM's kernels cannot be built (no ``sched_yield`` to call), the
    others are built without them (:func:`lstm_ready`)."""
    if not _state["functions"] and not _state.get("failed"):
        with _lock:
            if not _state["functions"] and not _state.get("failed"):
                try:
                    _compile(lstm=True)
                except Exception:  # AttributeError from an old llvmlite, or LLVM refusing the target
                    try:
                        _compile(lstm=False)
                    except Exception:
                        _state["failed"] = True
    return bool(_state["functions"])


def lstm_ready() -> bool:
    """Whether :func:`lstm_forward` and :func:`lstm_backward` are compiled and usable."""
    return prepare() and "lstm_forward" in _state["functions"]


def _machine_code(module):
    """The IR ``module`` optimised and compiled for the host CPU: an execution engine to take the
    functions' addresses from (their code lives as long as it does)."""
    _init()
    module.triple = llvm.get_process_triple()
    target = llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3)
    parsed = llvm.parse_assembly(str(module))
    parsed.verify()
    passes = llvm.create_pass_builder(target, llvm.create_pipeline_tuning_options(speed_level=3))
    passes.getModulePassManager().run(parsed, passes)
    engine = llvm.create_mcjit_compiler(parsed, target)
    engine.finalize_object()
    return engine


def _compile(lstm: bool):
    _init()
    module = ir.Module("shenjing_microkernels")
    module.triple = llvm.get_process_triple()  # (the barrier asks it before compiling)
    fma = ir.Function(module, ir.FunctionType(_VEC, [_VEC] * 3), "llvm.fma.v16f32")
    for name, unit_step in _FUNCTIONS.items():
        _product_ir(module, fma, name, unit_step)
    if lstm:
        llvm.add_symbol("sched_yield", ctypes.cast(ctypes.CDLL(None).sched_yield, ctypes.c_void_p).value)
        _lstm_forward_ir(module, fma, "lstm_forward")
        _lstm_backward_ir(module, fma, "lstm_backward")
    engine = _state["engine"] = _machine_code(module)  # kept: it holds the machine code
    i64, p = ctypes.c_int64, ctypes.c_void_p
    prototype = ctypes.CFUNCTYPE(None, p, i64, i64, p, i64, p, i64, i64, i64, p, i64, p, i64, i64, p, i64)
    functions = {name: prototype(engine.get_function_address(name)) for name in _FUNCTIONS}
    if lstm:
        functions["lstm_forward"] = ctypes.CFUNCTYPE(i64, *[p] * 8, *[i64] * 5, p, i64)(
            engine.get_function_address("lstm_forward"))
        functions["lstm_backward"] = ctypes.CFUNCTYPE(i64, p, i64, i64, *[p] * 6, i64, p, p, *[i64] * 6, p, i64)(
            engine.get_function_address("lstm_backward"))
    _state["functions"] = functions


def window_product(x, pixel_offsets, segment_offsets, seg_len, w, out, bias=None, relu=False, accumulate=False,
                   step=1):
    """out[s, p, :] (+)= Σ_seg Σ_j x[s].flat[pixel_offsets[p] + segment_offsets[seg] + j·step] · w[seg·seg_len + j, :]
    (+ bias, then relu when ``relu``; added to ``out`` when ``accumulate``), for the samples s of ``x``.

    A convolution's forward pass: p an output pixel, its window's values read as runs (segments) of
    ``seg_len`` values ``step`` apart. Its kernel gradient too: p a (tap, channel) of the kernel and
    the segments the output rows, ``w`` the output gradient's rows.

    ``x`` (samples, …) float32, C-contiguous: each sample's input; ``pixel_offsets`` (pixels,) and
    ``segment_offsets`` (segments,) int64, contiguous, offsets in a sample's flat input; ``w``
    (segments·seg_len, F) float32, C-contiguous, F a multiple of :data:`LANES`; ``bias`` (F,) float32
    or None; ``out`` (samples, pixels, F) float32, its rows contiguous (any distance between samples).
    """
    if not prepare():
        raise RuntimeError("window_product: the kernels could not be compiled (llvmlite >= 0.44 is needed)")
    samples = x.shape[0]
    pixels, f = out.shape[1], out.shape[2]
    if bias is None:
        bias = _zeros(f)
    # checked always (not asserts): the kernel reads and writes through raw pointers
    if f % LANES or w.shape != (len(segment_offsets) * seg_len, f) or out.shape[0] != samples:
        raise ValueError(f"window_product: out {out.shape} and w {w.shape} do not fit {len(segment_offsets)} "
                         f"segments of {seg_len} and {samples} samples (F a multiple of {LANES})")
    if len(pixel_offsets) != pixels or bias.shape != (f,):
        raise ValueError(f"window_product: {len(pixel_offsets)} pixel offsets and bias {bias.shape} for out "
                         f"{out.shape}")
    _check_layout("window_product", "x, w and bias", (x, w, bias), "the offsets", (pixel_offsets, segment_offsets))
    if out.dtype.char != "f" or out.strides[1:] != (4 * f, 4) or out.strides[0] % 4:
        raise ValueError("window_product: out must be float32 with contiguous rows")
    sample_stride = x.strides[0] // 4 if samples else 0
    function = _state["functions"]["contiguous" if step == 1 else "strided"]
    function(x.ctypes.data, sample_stride, samples, pixel_offsets.ctypes.data, pixels, segment_offsets.ctypes.data,
             len(segment_offsets), seg_len, step, w.ctypes.data, f, bias.ctypes.data, int(bool(relu)),
             int(bool(accumulate)), out.ctypes.data, out.strides[0] // 4)


def _check_layout(caller, floats_label, floats, ints_label, ints):
    """Raise unless ``floats`` are C-contiguous float32 and ``ints`` contiguous int64: the kernels read
    and write them through raw pointers (checked always, not asserted)."""
    if not all(x.dtype == np.float32 and x.flags.c_contiguous for x in floats):  # (not byte-swapped)
        raise ValueError(f"{caller}: {floats_label} must be C-contiguous float32")
    if not all(x.dtype.kind == "i" and x.itemsize == 8 and x.flags.c_contiguous for x in ints):
        raise ValueError(f"{caller}: {ints_label} must be contiguous int64")


def strided_rows(g) -> bool:
    """Whether a kernel can read the float32 array ``g`` at its strides through a raw pointer: contiguous
    rows (the last axis) and non-negative strides in whole elements (:func:`lstm_backward`'s ``g``)."""
    return g.dtype == np.float32 and g.strides[-1] == 4 and all(step >= 0 and step % 4 == 0 for step in g.strides)


def _zeros(f):
    zeros = _state.get("zeros")
    if zeros is None or len(zeros) < f:
        zeros = _state["zeros"] = np.zeros(max(f, 1024), dtype=np.float32)
    return zeros[:f]


def lstm_forward(h, c, tc, a, proj, proj_offsets, index, panels):
    """The steps of a sigmoid/tanh LSTM, checked and made ready to run: returns ``part(k, parties)``,
    which runs the units of the k-th of ``parties`` even shares of the panels, in step with the other
    parties' threads (a barrier after every step: the next one needs all of h); ``part(0, 1)`` runs
    them all. For :func:`shenjing.backend.parallel.run_together`; one call of ``lstm_forward`` per run.

    ``h``, ``c`` (t + 1, n, u): the states in processing order, [0] given, [s + 1] written at step s;
    ``tc`` (t, n, u): tanh(c) of each step, written; ``a`` (t, n, 4·u): the gates i, f, g, o of each step,
    written at ``index[s]`` (its input time); ``proj`` (float32, any shape; may be ``a`` itself),
    ``proj_offsets`` (t, n) int64: step s's row r of the input projection (its sigmoid columns halved)
    starts at ``proj.flat[proj_offsets[s, r]]``; ``panels`` (u / 16, u, 64): the recurrent kernel, its
    sigmoid columns halved, packed by :func:`lstm_panels`.
    """
    if not lstm_ready():
        raise RuntimeError("lstm_forward: the kernels could not be compiled (llvmlite >= 0.44 is needed)")
    t1, n, u = h.shape
    t, count = t1 - 1, u // LANES
    if (c.shape != h.shape or tc.shape != (t, n, u) or a.shape != (t, n, 4 * u) or proj_offsets.shape != (t, n)
            or index.shape != (t,) or panels.shape != (count, u, 4 * LANES) or u % LANES):
        raise ValueError(f"lstm_forward: shapes do not fit h {h.shape}: c {c.shape}, tc {tc.shape}, a {a.shape}, "
                         f"offsets {proj_offsets.shape}, index {index.shape}, panels {panels.shape}")
    _check_layout("lstm_forward", "the arrays", (h, c, tc, a, proj, panels), "the offsets and index",
                  (proj_offsets, index))
    if t and n and (proj_offsets.min() < 0 or proj_offsets.max() + 4 * u > proj.size or index.min() < 0
                    or index.max() >= t):
        raise ValueError("lstm_forward: an offset or index out of range")
    return _Parts(_state["functions"]["lstm_forward"], count,
                  (h, c, tc, a, proj, proj_offsets, index, panels, n, u, t), ())


def lstm_panels(kernel):
    """The recurrent kernel (u, 4·u) (gate blocks i, f, g, o) packed for :func:`lstm_forward`: panel p
    (u, 64) holds the columns of units 16p … 16p + 15 of each gate, gate after gate."""
    u = kernel.shape[0]
    out = aligned_empty((u // LANES, u, 4 * LANES), kernel.dtype, host=True)
    out.reshape(u // LANES, u, 4, LANES)[...] = kernel.reshape(u, 4, u // LANES, LANES).transpose(2, 0, 1, 3)
    return out


def lstm_backward(g, a, tc, c, dz, gc, gh, index, transposed, slots):
    """The backward steps of :func:`lstm_forward`, checked and made ready to run as ``part(k, parties)``
    (the same split of the units; a barrier after every step), in reverse processing order.

    ``g`` (n, t + k, u), k >= 0: the gradient of the node's output (the outputs, then any final states),
    whose [:, s] is added to the gradient reaching step s's h; any layout whose rows of u are contiguous
    (read at its strides: a time-major array seen batch-major is read step block by step block);
    ``a``, ``tc``, ``c``: the forward's gates, tanh(c) and cells; ``dz`` (t, n, 4·u): written with the
    gradient of each step's gate pre-activations (those of the unhalved kernel), at ``index[s]``; ``gc``
    (n, u): the gradient of the final c, replaced by that of c0; ``gh`` (n, u): that of the final h;
    ``transposed`` (4·u·u,): the recurrent kernel (unhalved) packed by :func:`lstm_transposed`. Returns
    ``(part, finish)``: ``finish(parties)``, after the run, gives the gradient of h0. ``slots``: the most
    parties that may run.
    """
    if not lstm_ready():
        raise RuntimeError("lstm_backward: the kernels could not be compiled (llvmlite >= 0.44 is needed)")
    t, n, width = a.shape
    u, count = width // 4, width // (4 * LANES)
    if (g.ndim != 3 or g.shape[0] != n or g.shape[1] < t or g.shape[2] != u or tc.shape != (t, n, u)
            or c.shape != (t + 1, n, u) or dz.shape != a.shape or gc.shape != (n, u) or gh.shape != (n, u)
            or index.shape != (t,) or transposed.shape != (width * u,) or u % LANES):
        raise ValueError(f"lstm_backward: shapes do not fit a {a.shape}: g {g.shape}, tc {tc.shape}, c {c.shape}, "
                         f"dz {dz.shape}, gc {gc.shape}, gh {gh.shape}, index {index.shape}, "
                         f"transposed {transposed.shape}")
    _check_layout("lstm_backward", "the arrays", (a, tc, c, dz, gc, gh, transposed), "the index", (index,))
    if not strided_rows(g):
        raise ValueError("lstm_backward: g must be float32 with contiguous rows (its last axis) and "
                         f"non-negative strides, got {g.dtype} with strides {g.strides}")
    if t and (index.min() < 0 or index.max() >= t):
        raise ValueError("lstm_backward: an index out of range")
    partials = aligned_empty((2, max(1, slots), n, u), np.float32, host=True)
    partials[...] = 0
    partials[0, 0] = gh
    head = (g, g.strides[0] // 4, g.strides[1] // 4, a, tc, c, dz, gc, partials, partials.shape[1], index, transposed,
            n, u, t)
    parts = _Parts(_state["functions"]["lstm_backward"], count, head, (0,), slots=partials.shape[1])

    def finish(parties):
        return partials[t % 2, :parties].sum(axis=0)

    return parts, finish


def lstm_transposed(kernel):
    """The recurrent kernel (u, 4·u) transposed for :func:`lstm_backward`, flat: its rows (4·u, u) in
    :func:`lstm_panels`' column order (units 16p … 16p + 15 of each gate, gate after gate), cut into panels
    of 64 columns (the last one narrower when u is not a multiple of 64), one after another (one copy)."""
    u = kernel.shape[0]
    step = LANES * VECTORS
    full = u // step * step
    out = aligned_empty(4 * u * u, np.float32, host=True)
    # kernel[k, q·u + 16p + l] of column panel k // 64 goes to [k // 64][p][q][l][k % 64]
    grouped = kernel[:full].reshape(full // step, step, 4, u // LANES, LANES).transpose(0, 3, 2, 4, 1)
    out[:4 * u * full].reshape(grouped.shape)[...] = grouped
    if full < u:
        rest = kernel[full:].reshape(u - full, 4, u // LANES, LANES).transpose(2, 1, 3, 0)
        out[4 * u * full:].reshape(rest.shape)[...] = rest
    return out


class _Parts:
    """One run of a kernel whose parties meet at barriers: ``parts(k, parties)`` runs the k-th of
    ``parties`` (at most ``slots``) even shares of ``count`` panels; ``parts.cancel()`` calls the run
    off (a party that will never come: the others return at their next barrier, and so does any that
    starts later). A part that fails before its kernel starts calls the run off itself. One run only:
    the barrier's counter is not reset.

    ``function(*head, first, stop, *slot, counter, parties)``: arrays in ``head`` are passed as pointers
    (and kept alive here); ``slot`` is ``()``, or ``(0,)`` for a function that takes its party's number."""

    def __init__(self, function, count, head, slot, slots=None):
        self.function, self.count, self.head, self.numbered = function, count, head, bool(slot)
        self.slots = slots
        self.counter = np.zeros(2, np.int64)  # arrivals, called off
        self.arguments = tuple(x.ctypes.data if isinstance(x, np.ndarray) else x for x in head)

    def __call__(self, k, parties):
        try:
            if not 0 <= k < parties or (self.slots is not None and parties > self.slots):
                raise ValueError(f"part {k} of {parties}: out of range (at most {self.slots} parties)")
            slot = (k,) if self.numbered else ()
            status = self.function(*self.arguments, self.count * k // parties, self.count * (k + 1) // parties,
                                   *slot, self.counter.ctypes.data, parties)
        except BaseException:
            self.cancel()
            raise
        if status:
            raise RuntimeError("the compiled LSTM steps were called off (a thread of the run never came)")

    def cancel(self):
        self.counter[1] = 1
