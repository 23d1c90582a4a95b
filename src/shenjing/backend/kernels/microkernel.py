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
"""

from __future__ import annotations

import ctypes
import threading

import llvmlite.binding as llvm
import llvmlite.ir as ir
import numpy as np

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
    if "suited" not in _state:  # asking LLVM costs ~0.15 ms
        _init()
        _state["suited"] = "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")
    return _state["suited"]


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


def _broadcast(b, scalar):
    lanes = b.insert_element(ir.Constant(_VEC, ir.Undefined), scalar, ir.Constant(_I32, 0))
    return b.shuffle_vector(lanes, ir.Constant(_VEC, ir.Undefined), ir.Constant(ir.VectorType(_I32, LANES),
                                                                                    [0] * LANES))


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
    wide_end = b.mul(b.sdiv(f, _const(LANES * VECTORS)), _const(LANES * VECTORS))
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

            def wide_body(panel, _):
                columns(b.mul(panel, _const(LANES * VECTORS)), VECTORS)
                return []

            _loop(b, _const(0), b.sdiv(f, _const(LANES * VECTORS)), [], wide_body)
            remainder = b.sdiv(b.sub(f, wide_end), _const(LANES))
            for vectors in range(1, VECTORS):
                with b.if_then(b.icmp_signed("==", remainder, _const(vectors))):
                    columns(wide_end, vectors)
            return []

        _loop(b, _const(0), blocks, [], block_body)
        return []

    _loop(b, _const(0), samples, [], sample_body)
    b.ret_void()


def _relu_if(b, value, do_relu, zero):
    """``value`` with its negative lanes zeroed when ``do_relu`` (NaN kept, as NumPy's maximum)."""
    clipped = b.select(b.fcmp_ordered("<", value, zero), zero, value)
    return b.select(do_relu, clipped, value)


_FUNCTIONS = {"contiguous": True, "strided": False}
"""The compiled functions: name -> whether it reads a segment's values one after another."""


def prepare() -> bool:
    """Compile the kernels now (once per process), not at their first call; returns whether they are
    usable (an llvmlite without the new pass manager, before 0.44, cannot build them: the callers then
    keep their BLAS path)."""
    if not _state["functions"] and not _state.get("failed"):
        with _lock:
            if not _state["functions"] and not _state.get("failed"):
                try:
                    _compile()
                except Exception:  # AttributeError from an old llvmlite, or LLVM refusing the target
                    _state["failed"] = True
    return bool(_state["functions"])


def _compile():
    _init()
    module = ir.Module("shenjing_microkernels")
    module.triple = llvm.get_process_triple()
    fma = ir.Function(module, ir.FunctionType(_VEC, [_VEC] * 3), "llvm.fma.v16f32")
    for name, unit_step in _FUNCTIONS.items():
        _product_ir(module, fma, name, unit_step)
    target = llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3)
    parsed = llvm.parse_assembly(str(module))
    parsed.verify()
    passes = llvm.create_pass_builder(target, llvm.create_pipeline_tuning_options(speed_level=3))
    passes.getModulePassManager().run(parsed, passes)
    engine = llvm.create_mcjit_compiler(parsed, target)
    engine.finalize_object()
    _state["engine"] = engine  # keeps the machine code alive
    i64, p = ctypes.c_int64, ctypes.c_void_p
    prototype = ctypes.CFUNCTYPE(None, p, i64, i64, p, i64, p, i64, i64, i64, p, i64, p, i64, i64, p, i64)
    _state["functions"] = {name: prototype(engine.get_function_address(name)) for name in _FUNCTIONS}


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
    if not all(a.dtype.char == "f" and a.flags.c_contiguous for a in (x, w, bias)):
        raise ValueError("window_product: x, w and bias must be C-contiguous float32")
    if not all(a.dtype.kind == "i" and a.itemsize == 8 and a.flags.c_contiguous
               for a in (pixel_offsets, segment_offsets)):
        raise ValueError("window_product: the offsets must be contiguous int64")
    if out.dtype.char != "f" or out.strides[1:] != (4 * f, 4) or out.strides[0] % 4:
        raise ValueError("window_product: out must be float32 with contiguous rows")
    sample_stride = x.strides[0] // 4 if samples else 0
    function = _state["functions"]["contiguous" if step == 1 else "strided"]
    function(x.ctypes.data, sample_stride, samples, pixel_offsets.ctypes.data, pixels, segment_offsets.ctypes.data,
             len(segment_offsets), seg_len, step, w.ctypes.data, f, bias.ctypes.data, int(bool(relu)),
             int(bool(accumulate)), out.ctypes.data, out.strides[0] // 4)


def _zeros(f):
    zeros = _state.get("zeros")
    if zeros is None or len(zeros) < f:
        zeros = _state["zeros"] = np.zeros(max(f, 1024), dtype=np.float32)
    return zeros[:f]
