"""float32 matrix products on the CPU's matrix unit (Intel AMX), as six bfloat16 products.

AMX multiplies 16×32 by 32×16 tiles of bfloat16 (8 significant bits) into float32 sums, one such
product every 16 cycles per core: on this project's machine 3.3 TFLOP/s a core, where AVX-512 gives
float32 170 GFLOP/s (OpenBLAS's sgemm on one core). A float32 value x is the exact sum of three
bfloat16 values, x = h + m + l (each rounded to nearest from what is left), |m| ≤ 2⁻⁸|x| and
|l| ≤ 2⁻¹⁶|x|. Of the nine products of two such sums, the six kept here (hh, mh, lh, hm, mm, hl) leave
out ml, lm and ll, together at most about 2·2⁻²⁴ of |x·y| (float32's rounding unit is 2⁻²⁴); every
product of two bfloat16 values is exact in float32, and each of the six partial sums is rounded into
the float32 accumulator, so a K step rounds six times where sgemm rounds once (a worst-case bound six
times looser; on random factors the error is the same as BLAS's: 1000×784 @ 784×512, worst error
1.5e-7 of Σ|x||y| against float64, OpenBLAS's 1.6e-7). This is the emulation of float32 products by
bfloat16 ones described by Henry, Tang and Heinecke (2019), "Leveraging the bfloat16 artificial
intelligence datatype for higher-precision computations".

:func:`matmul` splits ``a``'s rows into the three parts, in tiles of 16 rows × 32 columns, each tile
1 KB of contiguous memory (:func:`_split_ir`); splits and packs ``b`` the same way, in the pairs layout
the tile product reads (two rows' values side by side: :func:`_pack_ir`); then each thread computes
its share of 32-row blocks of the result (:func:`_product_ir`), each block 2 × 2 accumulator tiles
over the whole K, the six products of a K step in an order that reloads no tile a running product
still reads (measured with the tiles in L1: a schedule that did ran at 44% of the unit's rate, this one
at 99%; on 1000×784 @ 784×512 the kernel runs at 1.5 TFLOP/s of bfloat16 products on one core, 47%:
each 2 × 2 block reads its parts of ``a`` and ``b`` from L2).
The unit reads bfloat16 values below float32's normal range (2⁻¹²⁶) as zero and flushes such products
to zero, which would lose more than float32's rounding where factors are very small, and the parts of a
value near float32's largest would overflow: the split reports each matrix's smallest nonzero magnitude
and any value of :data:`LARGEST` or more (infinities and NaN included), and :func:`matmul` returns None —
the caller's BLAS does the product — unless every nonzero factor, and every product of two, is at least
:data:`SMALLEST`.

The kernels are LLVM IR (llvmlite, as :mod:`.microkernel`), compiled once per process for the host
CPU. Linux lends a process the tile registers' 8 KB of state only when asked
(``arch_prctl(ARCH_REQ_XCOMP_PERM)``, done once in :func:`suited`); where it refuses, where the CPU
has no AMX-BF16, or where llvmlite is too old, :func:`suited` is False and callers keep their BLAS.
"""

from __future__ import annotations

import ctypes
import platform
import threading

import llvmlite.ir as ir
import numpy as np

from .. import aligned_empty, parallel
from .microkernel import (
    _F32,
    _I32,
    _I64,
    LANES,
    _broadcast,
    _const,
    _intrinsic,
    _loop,
    _machine_code,
    _splat,
    host_features,
    strided_rows,
)

TILE_ROWS = 16
"""Rows of a tile; a tile row is 64 bytes: 32 bfloat16 values (or 16 pairs)."""

BLOCK = 32
"""Rows (and columns) of a result block: 2 × 2 accumulator tiles."""

GROUP = 8
"""Row blocks a thread takes together, column block after column block: their parts of ``a``
(8 × 32 rows × 3 parts × K, 1.2 MB for K = 784) stay in the core's L2 while the columns pass
(measured on 1000×784 @ 784×512: groups of 4 to 8 blocks 3.2 ms on one core, 16 3.5, all 3.6)."""

PARTS = 3
STEPS = ((0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (0, 2))
"""The six products of a K step as (part of ``a``, part of ``b``), 0 = h, 1 = m, 2 = l, in the order
that runs (grouped by the part of ``b``, so that one of the two operands stays loaded)."""

_TILE_BYTES = TILE_ROWS * 64
_TILE_VALUES = 32  # bfloat16 values in a tile row: a K chunk
_PART_VALUES = _TILE_BYTES // 2  # bfloat16 values in a tile
_I1, _I8, _I16 = ir.IntType(1), ir.IntType(8), ir.IntType(16)
_W = LANES
_VI32, _VF32, _VI16, _VI1 = (ir.VectorType(t, _W) for t in (_I32, _F32, _I16, _I1))
_P8 = _I8.as_pointer()
_state: dict = {}
_lock = threading.Lock()


def suited() -> bool:
    """Whether :func:`matmul` can run here: an x86-64 Linux CPU with AMX-BF16 whose kernel lends this
    process the tile state, and an llvmlite that compiles the kernels (asked once)."""
    if "suited" not in _state:
        with _lock:
            if "suited" not in _state:
                _state["suited"] = _host_has_tiles() and _compiled()
    return _state["suited"]


def _host_has_tiles() -> bool:
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    if not {"+amx-bf16", "+amx-tile"} <= host_features():
        return False
    arch_prctl, req_xcomp_perm, xtiledata = 158, 0x1023, 18  # SYS_arch_prctl on x86-64; <asm/prctl.h>
    return ctypes.CDLL(None, use_errno=True).syscall(arch_prctl, req_xcomp_perm, xtiledata) == 0


def _load_row(b, row, start, count, inside):
    """The 16 floats of ``row`` from ``start``, lanes at or past ``count`` (and all of them unless
    ``inside``) read as 0 without touching memory."""
    masked_load = _intrinsic(b.module, "llvm.masked.load.v16f32.p0", _VF32,
                             [_VF32.as_pointer(), _I32, _VI1, _VF32])
    columns = b.add(_broadcast(b, b.trunc(start, _I32), _VI32), ir.Constant(_VI32, list(range(_W))))
    mask = b.icmp_signed("<", columns, _broadcast(b, b.trunc(count, _I32), _VI32))
    mask = b.and_(mask, _broadcast(b, inside, _VI1))
    pointer = b.bitcast(b.gep(row, [start]), _VF32.as_pointer())
    return b.call(masked_load, [pointer, ir.Constant(_I32, 4), mask, _splat(0.0, _VF32)])


LARGEST = 2.0 ** 63
"""Factors of this magnitude or more (with infinities and NaN) are left to BLAS: products of two smaller
ones stay below 2¹²⁶, so that no part's product overflows where x·y would not."""
_LARGEST_BITS = (127 + 63) << 23

SMALLEST = 2.0 ** -102
"""The least magnitude of a nonzero factor, and of a product of two, that the unit takes. It reads
bfloat16 values below 2⁻¹²⁶ as zero and flushes products below 2⁻¹²⁶ to zero: a part (or a product of
parts) lost that way is below 2⁻²⁴ of its factor (or of x·y) when those are at least 2⁻¹⁰², float32's
rounding unit. :func:`matmul` checks it with each matrix's smallest nonzero magnitude."""
_NONE_BITS = 0x7F800000  # a zero's magnitude in the minimum: +inf's bits, above every finite value


def _row_at(b, matrix, r, rows, ld):
    """Whether row ``r`` is one of the matrix's ``rows``, and a pointer to it (to row 0 when it is not: the
    masked loads then read nothing)."""
    inside = b.icmp_signed("<", r, rows)
    return inside, b.gep(matrix, [b.mul(b.select(inside, r, _const(0)), ld)])


def _split(b, x, least, bad):
    """The bfloat16 parts (h, m, l) of the 16 floats ``x`` as <16 x i16>; ``least`` (the smallest nonzero
    magnitudes so far, as bits) and ``bad`` (the lanes that met a value of :data:`LARGEST` or more) with
    ``x`` taken in."""

    def nearest(bits):  # the bfloat16 nearest, ties to even, in the high half of the float's bits
        odd = b.and_(b.lshr(bits, _splat(16, _VI32)), _splat(1, _VI32))
        return b.and_(b.add(b.add(bits, _splat(0x7FFF, _VI32)), odd), _splat(-(1 << 16), _VI32))

    bits = b.bitcast(x, _VI32)
    h = nearest(bits)
    rest = b.fsub(x, b.bitcast(h, _VF32))
    m = nearest(b.bitcast(rest, _VI32))
    l_ = nearest(b.bitcast(b.fsub(rest, b.bitcast(m, _VF32)), _VI32))
    magnitude = b.and_(bits, _splat(0x7FFFFFFF, _VI32))
    bad = b.or_(bad, b.icmp_unsigned(">=", magnitude, _splat(_LARGEST_BITS, _VI32)))
    nonzero = b.select(b.icmp_unsigned("==", magnitude, _splat(0, _VI32)), _splat(_NONE_BITS, _VI32), magnitude)
    least = b.select(b.icmp_unsigned("<", nonzero, least), nonzero, least)
    return [b.trunc(b.lshr(p, _splat(16, _VI32)), _VI16) for p in (h, m, l_)], least, bad


def _bounds_start():
    return [_splat(_NONE_BITS, _VI32), ir.Constant(_VI1, [0] * _W)]


def _bounds_result(b, least, bad):
    """-1 when a lane met a value of :data:`LARGEST` or more; else the smallest nonzero magnitude's bits."""
    reduce_min = _intrinsic(b.module, "llvm.vector.reduce.umin.v16i32", _I32, [_VI32])
    smallest = b.zext(b.call(reduce_min, [least]), _I64)
    any_bad = b.icmp_unsigned("!=", b.bitcast(bad, _I16), ir.Constant(_I16, 0))
    return b.select(any_bad, _const(-1), smallest)


def _split_ir(module):
    """i64 split_rows(x, rows, cols, ld, r0, r1, k_chunks, parts): rows r0..r1 (any past ``rows`` as
    zeros) of the float32 matrix x (``ld`` floats apart) as tiles: tile (row tile, K chunk) holds its
    three parts, 1 KB each, one after another; returns what :func:`_bounds_result` says of the rows."""
    fp, sp = _F32.as_pointer(), _I16.as_pointer()
    fn = ir.Function(module, ir.FunctionType(_I64, [fp, _I64, _I64, _I64, _I64, _I64, _I64, sp]), "split_rows")
    x, rows, cols, ld, r0, r1, k_chunks, parts = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))

    def row_body(r, bounds):
        inside, source = _row_at(b, x, r, rows, ld)
        tile_row = b.mul(b.sdiv(r, _const(TILE_ROWS)), b.mul(k_chunks, _const(PARTS * _PART_VALUES)))
        target = b.gep(parts, [b.add(tile_row, b.mul(b.srem(r, _const(TILE_ROWS)), _const(_TILE_VALUES)))])

        def vector_body(v, bounds):
            values, *bounds = _split(b, _load_row(b, source, b.mul(v, _const(_W)), cols, inside), *bounds)
            chunk_start = b.mul(b.sdiv(v, _const(2)), _const(PARTS * _PART_VALUES))
            at = b.add(chunk_start, b.mul(b.srem(v, _const(2)), _const(_W)))
            for p, part in enumerate(values):
                place = b.gep(target, [b.add(at, _const(p * _PART_VALUES))])
                b.store(part, b.bitcast(place, _VI16.as_pointer()), align=2)
            return bounds

        return _loop(b, _const(0), b.mul(k_chunks, _const(2)), bounds, vector_body)

    b.ret(_bounds_result(b, *_loop(b, r0, r1, _bounds_start(), row_body)))


def _pack_ir(module):
    """i64 pack_pairs(w, rows, cols, ld, p0, p1, k_chunks, parts): the row pairs p0..p1 of the float32
    matrix w (K × N, ``ld`` floats apart; rows past K and columns past N, up to a multiple of 32, as zeros)
    as the tiles the product reads: tile (column tile, K chunk) holds its three parts, 1 KB each, whose
    row j has the values of w's rows 2j and 2j + 1 of the chunk side by side for each of 16 columns;
    returns what :func:`_bounds_result` says of the rows."""
    fp, sp = _F32.as_pointer(), _I16.as_pointer()
    fn = ir.Function(module, ir.FunctionType(_I64, [fp, _I64, _I64, _I64, _I64, _I64, _I64, sp]), "pack_pairs")
    w, rows, cols, ld, p0, p1, k_chunks, parts = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    side_by_side = ir.Constant(ir.VectorType(_I32, 2 * _W), [i // 2 + (_W if i % 2 else 0) for i in range(2 * _W)])
    column_tiles = b.mul(b.sdiv(b.add(cols, _const(BLOCK - 1)), _const(BLOCK)), _const(BLOCK // _W))

    def pair_body(j, bounds):
        first = b.mul(j, _const(2))
        in_chunk = b.add(b.mul(b.sdiv(j, _const(TILE_ROWS)), _const(PARTS * _PART_VALUES)),
                         b.mul(b.srem(j, _const(TILE_ROWS)), _const(_TILE_VALUES)))

        def tile_body(t, bounds):
            split_rows = []
            for r in (first, b.add(first, _const(1))):
                inside, row = _row_at(b, w, r, rows, ld)
                values, *bounds = _split(b, _load_row(b, row, b.mul(t, _const(_W)), cols, inside), *bounds)
                split_rows.append(values)
            tile = b.add(b.mul(b.mul(t, k_chunks), _const(PARTS * _PART_VALUES)), in_chunk)
            for p in range(PARTS):
                pair = b.shuffle_vector(split_rows[0][p], split_rows[1][p], side_by_side)
                place = b.gep(parts, [b.add(tile, _const(p * _PART_VALUES))])
                b.store(pair, b.bitcast(place, ir.VectorType(_I16, 2 * _W).as_pointer()), align=2)
            return bounds

        return _loop(b, _const(0), column_tiles, bounds, tile_body)

    b.ret(_bounds_result(b, *_loop(b, p0, p1, _bounds_start(), pair_body)))


def _product_ir(module):
    """void tile_product(a, b, c, ldc, block0, block1, k_chunks, column_blocks, config): the 32-row blocks
    block0..block1 of c (float32, ``ldc`` bytes apart) = a @ b from the tiles of :func:`_split_ir` and
    :func:`_pack_ir` (all column blocks, the whole K)."""
    void = ir.VoidType()
    fn = ir.Function(module, ir.FunctionType(void, [_P8, _P8, _P8, _I64, _I64, _I64, _I64, _I64, _P8]),
                     "tile_product")
    a, w, c, ldc, block0, block1, k_chunks, column_blocks, config = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    load_config = _intrinsic(module, "llvm.x86.ldtilecfg", void, [_P8])
    load = _intrinsic(module, "llvm.x86.tileloadd64", void, [_I8, _P8, _I64])
    store = _intrinsic(module, "llvm.x86.tilestored64", void, [_I8, _P8, _I64])
    zero = _intrinsic(module, "llvm.x86.tilezero", void, [_I8])
    product = _intrinsic(module, "llvm.x86.tdpbf16ps", void, [_I8, _I8, _I8])
    release = _intrinsic(module, "llvm.x86.tilerelease", void)
    tile = [ir.Constant(_I8, i) for i in range(8)]  # 0-3 the sums (row tile × column tile), 4-5 a, 6-7 b
    row_bytes = _const(64)
    strip = b.mul(k_chunks, _const(PARTS * _TILE_BYTES))  # a row (or column) tile's parts over the whole K
    b.call(load_config, [config])

    def block(rb, cb):
        a_tiles = [b.gep(a, [b.mul(b.add(b.mul(rb, _const(2)), _const(i)), strip)]) for i in range(2)]
        b_tiles = [b.gep(w, [b.mul(b.add(b.mul(cb, _const(2)), _const(i)), strip)]) for i in range(2)]
        for i in range(4):
            b.call(zero, [tile[i]])

        def chunk_body(k, _):
            chunk = b.mul(k, _const(PARTS * _TILE_BYTES))
            held = {}

            def put(register, strips, part):
                if held.get(register) != part:  # reloading the tile a product just read stalls the unit
                    held[register] = part
                    place = b.gep(strips, [b.add(chunk, _const(part * _TILE_BYTES))])
                    b.call(load, [tile[register], place, row_bytes])

            for p, q in STEPS:
                put(4, a_tiles[0], p)
                put(6, b_tiles[0], q)
                b.call(product, [tile[0], tile[4], tile[6]])
                put(7, b_tiles[1], q)
                b.call(product, [tile[1], tile[4], tile[7]])
                put(5, a_tiles[1], p)
                b.call(product, [tile[3], tile[5], tile[7]])
                b.call(product, [tile[2], tile[5], tile[6]])
            return []

        _loop(b, _const(0), k_chunks, [], chunk_body)
        corner = b.gep(c, [b.add(b.mul(b.mul(rb, _const(BLOCK)), ldc), b.mul(cb, _const(BLOCK * 4)))])
        for i in range(4):
            place = b.gep(corner, [b.add(b.mul(_const(TILE_ROWS * (i // 2)), ldc), _const(64 * (i % 2)))])
            b.call(store, [tile[i], place, ldc])

    def group_body(g, _):
        first = b.add(block0, b.mul(g, _const(GROUP)))
        last = b.add(first, _const(GROUP))
        last = b.select(b.icmp_signed(">", last, block1), block1, last)

        def column_body(cb, _):
            def row_body(rb, _):
                block(rb, cb)
                return []

            _loop(b, first, last, [], row_body)
            return []

        _loop(b, _const(0), column_blocks, [], column_body)
        return []

    groups = b.sdiv(b.add(b.sub(block1, block0), _const(GROUP - 1)), _const(GROUP))
    _loop(b, _const(0), groups, [], group_body)
    b.call(release, [])
    b.ret_void()


def _compiled() -> bool:
    """Compile the kernels (once); False where llvmlite cannot."""
    try:
        module = ir.Module("shenjing_tiles")
        _split_ir(module)
        _pack_ir(module)
        _product_ir(module)
        engine = _machine_code(module)
    except Exception:  # an llvmlite without the new pass manager, or an LLVM without the AMX intrinsics
        return False
    i64, p = ctypes.c_int64, ctypes.c_void_p
    _state["engine"] = engine  # kept: it holds the machine code
    prototype = ctypes.CFUNCTYPE(i64, p, *[i64] * 6, p)  # split_rows and pack_pairs
    _state["split"] = prototype(engine.get_function_address("split_rows"))
    _state["pack"] = prototype(engine.get_function_address("pack_pairs"))
    _state["product"] = ctypes.CFUNCTYPE(None, p, p, p, *[i64] * 5, p)(engine.get_function_address("tile_product"))
    config = np.zeros(64, np.uint8)  # palette 1; all eight tiles 16 rows of 64 bytes
    config[0] = 1
    config[16:32].view(np.uint16)[:] = 64
    config[48:56] = TILE_ROWS
    _state["config"] = config
    return True


def _up(n: int, step: int) -> int:
    return -(-n // step) * step


_scratch = threading.local()


def _buffer(name: str, values: int):
    """A reused, 64-byte-aligned uint16 buffer of at least ``values`` values, per thread (a fresh one of
    megabytes would cost its page faults at every call)."""
    buffer = getattr(_scratch, name, None)
    if buffer is None or buffer.size < values:
        buffer = aligned_empty((values,), np.uint16, host=True)
        setattr(_scratch, name, buffer)
    return buffer


def takes(a, b) -> bool:
    """Whether :func:`matmul` can read ``a`` and ``b``: float32 (M, K) and (K, N) matrices whose rows are
    contiguous and whole floats apart, in order (``microkernel.strided_rows``)."""
    return a.ndim == 2 and b.ndim == 2 and b.shape[0] == a.shape[1] and strided_rows(a) and strided_rows(b)


def matmul(a, b):
    """``a @ b`` for matrices :func:`takes` takes, as a new C-contiguous (M, N) float32 array — or None
    when a value of either is :data:`LARGEST` or more in magnitude (infinities and NaN too), or a nonzero
    one, or a product of two, could be below :data:`SMALLEST`: the caller's BLAS then multiplies, with
    IEEE's rules for those. Needs :func:`suited`. The pool's threads (:mod:`..parallel`) share the
    splitting of ``a`` by blocks of 32 rows and the packing of ``b`` by pairs of rows, then the product by
    blocks of 32 rows."""
    if not takes(a, b):
        raise ValueError(f"tiles.matmul: native float32 (M, K) @ (K, N) with contiguous rows, got "
                         f"{a.dtype}{a.shape} with strides {a.strides} @ {b.dtype}{b.shape} with strides {b.strides}")
    (m, k), n = a.shape, b.shape[1]
    rows, cols, depth = _up(m, BLOCK), _up(n, BLOCK), _up(k, _TILE_VALUES)
    k_chunks, blocks = depth // _TILE_VALUES, rows // BLOCK
    a_parts = _buffer("a", rows * depth * PARTS)
    b_parts = _buffer("b", cols * depth * PARTS)
    out = np.empty((rows, cols), np.float32)
    threads = max(1, min(parallel.threads(), blocks))
    row_blocks = parallel._even_blocks(0, blocks, threads)
    shares = list(zip(row_blocks, parallel._even_blocks(0, depth // 2, threads)))
    split, pack, product, config = _state["split"], _state["pack"], _state["product"], _state["config"]

    def prepare(share):
        (r0, r1), (p0, p1) = share
        return (split(a.ctypes.data, m, k, a.strides[0] // 4, r0 * BLOCK, r1 * BLOCK, k_chunks, a_parts.ctypes.data),
                pack(b.ctypes.data, k, n, b.strides[0] // 4, p0, p1, k_chunks, b_parts.ctypes.data))

    def multiply(row_block):
        product(a_parts.ctypes.data, b_parts.ctypes.data, out.ctypes.data, cols * 4, *row_block, k_chunks,
                cols // BLOCK, config.ctypes.data)

    bounds = np.array(parallel.run(prepare, shares), dtype=np.int64)  # (threads, 2: a, b)
    if (bounds < 0).any():
        return None
    smallest_a, smallest_b = bounds.min(axis=0).astype(np.uint32).view(np.float32).astype(np.float64)
    if min(smallest_a, smallest_b, smallest_a * smallest_b) < SMALLEST:  # (+inf, from all zeros, passes)
        return None
    parallel.run(multiply, row_blocks)
    return np.ascontiguousarray(out[:m, :n])  # a copy only when N is not a multiple of 32
