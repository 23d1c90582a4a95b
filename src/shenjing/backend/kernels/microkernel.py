"""Register-blocked multiply-accumulate kernels, written as LLVM IR and compiled with llvmlite.

A BLAS multiplies matrices it is given; a convolution has to build its column matrix first (im2col:
one copy of every input pixel per kernel tap) and hand it over. For the shapes of a small CNN the
BLAS then runs well below the machine's speed: OpenBLAS multiplies mnist_cnn's (N·24·24, 288) columns
by the (288, 64) kernel at 122 GFLOP/s on one core of this project's machine, where the same loop
nest written here runs at 151 (measured; MKL's own kernel reaches 155).

:func:`conv_forward` is that loop nest reading the input in place (an implicit im2col): the output
pixels are taken ``ROWS`` at a time, and for each block of ``VECTORS`` SIMD vectors of filters the
``ROWS × VECTORS`` accumulators stay in registers while the reduction runs over the kernel's taps
and channels — each step broadcasts one input value per pixel and multiplies it with the kernel
row's vectors (fused multiply-adds). A window's taps are read as segments of contiguous values
(``seg_len`` each, e.g. a kernel row's kw·C values of a channels-last input), so the only index
arithmetic is per segment. The bias and a relu are added before the accumulators are stored.

The IR is built with ``llvmlite.ir`` (llvmlite comes with numba: the compiled path's one
dependency), compiled once per process for the host CPU (≈ 10 ms) and called through ctypes, which
releases the GIL, so :mod:`..parallel` runs calls on sample blocks side by side. The kernels are
float32 and meant for CPUs with AVX-512 (:func:`suited`): with 16-lane vectors, 6 × 4 accumulators
fill 24 of the 32 vector registers; elsewhere LLVM would split the vectors and spill, and the
callers keep their BLAS path.
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import llvmlite.ir as ir

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


def _conv_forward_ir(module):
    """void conv_forward(x, sample_stride, samples, pixel_offsets, pixels, segment_offsets, segments,
    seg_len, w, f, bias, relu, out, out_sample_stride) — see :func:`conv_forward`."""
    fp, ip = _F32.as_pointer(), _I64.as_pointer()
    fma = ir.Function(module, ir.FunctionType(_VEC, [_VEC] * 3), "llvm.fma.v16f32")
    signature = ir.FunctionType(ir.VoidType(), [fp, _I64, _I64, ip, _I64, ip, _I64, _I64, fp, _I64, fp, _I64, fp,
                                                       _I64])
    fn = ir.Function(module, signature, "conv_forward")
    x, sample_stride, samples, pix_off, pixels, seg_off, segments, seg_len, w, f, bias, relu, out, out_stride = fn.args
    for pointer in (x, pix_off, seg_off, w, bias):
        pointer.add_attribute("noalias")
    out.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    zero = ir.Constant(_VEC, [0.0] * LANES)
    wide_end = b.mul(b.sdiv(f, _const(LANES * VECTORS)), _const(LANES * VECTORS))
    do_relu = b.icmp_signed("!=", relu, _const(0))
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
                        new = []
                        for r in range(ROWS):
                            a = _broadcast(b, b.load(b.gep(row_ptrs[r], [j]), align=4))
                            new.extend(b.call(fma, [a, wv[v], acc[r * vectors + v]]) for v in range(vectors))
                        return new

                    return _loop(b, _const(0), seg_len, acc, tap_body)

                acc = _loop(b, _const(0), segments, [zero] * (ROWS * vectors), segment_body)
                bias_v = [b.load(_vector_at(b, bias, b.add(col, _const(LANES * v))), align=4) for v in range(vectors)]
                for r in range(ROWS):
                    with b.if_then(b.icmp_signed("<", b.add(p0, _const(r)), pixels)):
                        row_out = b.gep(outs, [b.add(b.mul(b.add(p0, _const(r)), f), col)])
                        for v in range(vectors):
                            value = b.fadd(acc[r * vectors + v], bias_v[v])
                            value = _relu_if(b, value, do_relu, zero)
                            b.store(value, _vector_at(b, row_out, _const(LANES * v)), align=4)

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


def _compile():
    _init()
    module = ir.Module("shenjing_microkernels")
    module.triple = llvm.get_process_triple()
    _conv_forward_ir(module)
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
    address = engine.get_function_address("conv_forward")
    _state["functions"]["conv_forward"] = ctypes.CFUNCTYPE(None, p, i64, i64, p, i64, p, i64, i64, p, i64, p, i64,
                                                           p, i64)(address)


def conv_forward(x, pixel_offsets, segment_offsets, seg_len, w, bias, relu, out):
    """out[s, p, :] = Σ_seg Σ_j x[s].flat[pixel_offsets[p] + segment_offsets[seg] + j] · w[seg·seg_len + j, :]
    (+ bias, then relu when ``relu``), for the samples s of ``x``.

    ``x`` (samples, …) float32, C-contiguous: each sample's (padded) input; ``pixel_offsets``
    (pixels,) int64: where each output pixel's window starts in a sample's flat input;
    ``segment_offsets`` (segments,) int64: where each run of ``seg_len`` contiguous values of a
    window starts, relative to the window; ``w`` (segments·seg_len, F) float32, C-contiguous, F a
    multiple of :data:`LANES`; ``bias`` (F,) float32 (zeros for none); ``out`` (samples, pixels, F)
    float32, overwritten, its rows contiguous (any distance between samples: a range of pixels of a
    whole output may be given).
    """
    if not _state["functions"]:
        _compile()
    samples = x.shape[0]
    pixels, f = out.shape[1], out.shape[2]
    assert f % LANES == 0 and w.shape == (len(segment_offsets) * seg_len, f) and out.shape[0] == samples
    for a in (x, w, bias):
        assert a.dtype.char == "f" and a.flags.c_contiguous
    assert out.dtype.char == "f" and out.strides[1:] == (4 * f, 4) and out.strides[0] % 4 == 0
    sample_stride = x.strides[0] // 4 if samples else 0
    _state["functions"]["conv_forward"](x.ctypes.data, sample_stride, samples, pixel_offsets.ctypes.data, pixels,
                                        segment_offsets.ctypes.data, len(segment_offsets), seg_len, w.ctypes.data, f,
                                        bias.ctypes.data, int(bool(relu)), out.ctypes.data, out.strides[0] // 4)
