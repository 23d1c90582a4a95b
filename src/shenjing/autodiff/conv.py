"""Convolution and pooling primitives: fused ops with hand-derived backward passes.

Every op here works internally on channels-last arrays (N, H, W, C); a channels-first
input is transposed on the way in and the output (and the input's gradient) on the way
out, and a 1-D op is the 2-D op with a unit height axis. Kernels use Keras's layouts.

**Convolution** (``conv2d``; ``conv1d``, ``depthwise_conv2d`` reduce to it) is im2col: the
windows of the padded input, a strided view (N, Ho, Wo, kh, kw, C) made with ``as_strided`` (no
copy), are copied into a column matrix (N·Ho·Wo, kh·kw·C) and multiplied by the kernel reshaped
to (kh·kw·C, F) with BLAS. The work is cache-blocked: a few samples at a time (``B.block_rows``)
have their columns built in one reused buffer, multiplied straight into their output rows, and
get the bias and a fused activation (relu, tanh) while still in cache. Inputs of up to
``NARROW_CHANNELS`` channels build the transposed columns from a channel-major copy instead, so
that every copy moves whole image rows rather than C-element runs. For the output gradient g:

- ``dkernel = Σ_blocks colsᵀ · g`` (the columns rebuilt block by block: nothing of that size is
  kept between the passes);
- ``dbias = 1ᵀ · g`` (a matmul: many times faster than a reduction over three axes);
- ``dx`` (col2im): for every kernel tap (i, j), ``g · kernel[i, j]ᵀ`` (one matmul) added into the
  padded-input gradient at the pixels that tap read — a slice-add per tap, vectorised over the
  block's samples, pixels and channels, so overlapping windows accumulate; then the padding is
  cropped off.

On the compiled path, float32 convolutions with a multiple of 16 filters on an AVX-512 CPU skip the
column matrix: a register-blocked kernel (``backend.kernels.microkernel``) reads the input's windows
in place for the output (bias and relu added in registers), for dkernel (inputs of more than
``NARROW_CHANNELS`` channels), and for dx (stride 1, no dilation, a multiple of 16 channels, a finite
kernel) as the padded g convolved with the flipped kernel. mnist_cnn, measured: inference 1.4×,
training 1.15× as fast as on the columns.

Grouped and depthwise convolutions run one batched matmul over the groups on the whole batch.

**Transposed convolution** is the adjoint of ``conv2d``: its forward pass is the col2im
above, and its backward passes are im2col of the output gradient and two matmuls.

**Pooling** loops over the pool's taps (each tap a strided slice of the whole batch): max
pooling keeps a running maximum, and its backward gives g to the first tap equal to the window's
maximum (one winner per window, as ``argmax``), found from the kept input; inference thus does
no bookkeeping. Average pooling sums the taps and divides by the number of *real* (unpadded)
elements in each window, as Keras's 'same' average pooling does.

Padding ``'same'`` is TensorFlow's: total = max((⌈n/s⌉ − 1)·s + k_eff − n, 0) with
k_eff = (k − 1)·d + 1, the odd pixel going to the bottom/right.
"""

from __future__ import annotations

from .. import backend as B
from ..backend import jit, parallel
from . import nn
from . import tensor as _tensor
from .ops import _constant_like, _t
from .tensor import Tensor, make

CHANNELS_LAST = "channels_last"
CHANNELS_FIRST = "channels_first"

# ------------------------------------------------------------------------- arguments


_normalized: dict = {}  # (value, n) -> the tuple, for the int arguments seen: every op call normalizes them


def normalize_tuple(value, n: int, name: str) -> tuple:
    """``value`` (an int, or a sequence of ``n`` ints) as a tuple of ``n`` positive ints."""
    # plain ints and tuples of them come from a table; anything else (2.0, (2 + 0j, 3), a list) is checked
    # every time: it may compare equal to a key of the table and still have to raise
    if type(value) is int or (type(value) is tuple and all(type(v) is int for v in value)):
        key = (value, n)
        out = _normalized.get(key)
        if out is None:
            out = _normalize_tuple(value, n, name)
            if len(_normalized) < 1024:
                _normalized[key] = out
        return out
    return _normalize_tuple(value, n, name)


def _normalize_tuple(value, n: int, name: str) -> tuple:
    if isinstance(value, int) or (hasattr(value, "__index__") and not hasattr(value, "__len__")):
        out = (int(value),) * n
    else:
        try:
            out = tuple(int(v) for v in value)
        except TypeError:
            raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {value!r}") from None
        if len(out) != n or any(int(v) != v for v in value):
            raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
    if any(v <= 0 for v in out):
        raise ValueError(f"{name} must be positive, got {value!r}")
    return out


def check_data_format(data_format) -> str:
    if data_format not in (CHANNELS_LAST, CHANNELS_FIRST):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}")
    return data_format


def same_pads(size: int, k_eff: int, stride: int) -> tuple:
    """TensorFlow's 'same' padding (before, after) of one axis: the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k_eff - size, 0)
    return total // 2, total - total // 2


def resolve_padding(padding, sizes, k_effs, strides) -> tuple:
    """(before, after) per spatial axis for ``padding``: 'valid', 'same', 'causal' (pad
    only before), an int (every side), one int per axis (both sides) or one pair per axis."""
    n = len(sizes)
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0),) * n
        if mode == "same":
            return tuple(same_pads(size, k, s) for size, k, s in zip(sizes, k_effs, strides))
        if mode == "causal":
            return tuple((k - 1, 0) for k in k_effs)
        raise ValueError(f"padding must be 'valid', 'same', 'causal' or explicit sizes, got {padding!r}")
    if isinstance(padding, int):
        return ((int(padding), int(padding)),) * n
    items = list(padding)
    if n == 1 and len(items) == 2 and all(isinstance(p, int) for p in items):
        items = [tuple(items)]  # a 1-D (before, after) pair
    if len(items) != n:
        raise ValueError(f"padding must give {n} spatial axes, got {padding!r}")
    out = []
    for p in items:
        pair = (int(p), int(p)) if isinstance(p, int) else tuple(int(v) for v in p)
        if len(pair) != 2 or min(pair) < 0:
            raise ValueError(f"padding must be non-negative (before, after) sizes, got {padding!r}")
        out.append(pair)
    return tuple(out)


def conv_output_length(size, k_eff: int, stride: int, pads: tuple):
    """Output length of a convolution/pool along one axis (None stays None)."""
    if size is None:
        return None
    return (size + pads[0] + pads[1] - k_eff) // stride + 1


def deconv_output_length(size, kernel: int, padding: str, output_padding, stride: int, dilation: int = 1):
    """Output length of a transposed convolution along one axis (Keras's rule)."""
    if size is None:
        return None
    k_eff = (kernel - 1) * dilation + 1
    if output_padding is None:
        return size * stride + max(k_eff - stride, 0) if padding == "valid" else size * stride
    pad = k_eff // 2 if padding == "same" else 0
    return (size - 1) * stride + k_eff - 2 * pad + output_padding


def _operands(x, kernel, bias):
    """Tensors of the operands; a constant kernel or bias (an array) takes the input's float dtype,
    so that a float64 NumPy kernel never silently upcasts float32 data."""
    x = _t(x)
    kernel = kernel if isinstance(kernel, Tensor) else _constant_like(kernel, x)
    if bias is not None and not isinstance(bias, Tensor):
        bias = _constant_like(bias, x)
    return x, kernel, bias


# ---------------------------------------------------------------------------- layout


def _to_nhwc(a, rank: int, data_format: str):
    """A (N, L, C) / (N, C, L) / (N, H, W, C) / (N, C, H, W) array as a (N, H, W, C) view."""
    if rank == 1:
        a = a[:, None, :, :] if data_format == CHANNELS_LAST else a[:, :, None, :]
    if data_format == CHANNELS_FIRST:
        a = a.transpose(0, 2, 3, 1)
    return a


def _from_nhwc(a, rank: int, data_format: str):
    if data_format == CHANNELS_FIRST:
        a = a.transpose(0, 3, 1, 2)
    if rank == 1:
        a = a[:, 0] if data_format == CHANNELS_LAST else a[:, :, 0]
    return a


def _channel_axes(rank: int, data_format: str) -> tuple:
    """The batch and spatial axes (the ones a bias gradient sums over)."""
    if data_format == CHANNELS_LAST:
        return tuple(range(rank + 1))
    return (0,) + tuple(range(2, rank + 2))


def _pad_nhwc(x, pads, fill=0.0):
    """``x`` (N, H, W, C) padded with ``fill``; ``x`` itself when there is no padding."""
    (pt, pb), (pl, pr) = pads
    if not (pt or pb or pl or pr):
        return x
    xp = B.xp
    n, h, w, c = x.shape
    # the borders filled and the inside copied: one pass over the array (a full() first made two)
    out = xp.empty((n, h + pt + pb, w + pl + pr, c), dtype=x.dtype)
    out[:, :pt] = fill
    out[:, pt + h:] = fill
    out[:, pt:pt + h, :pl] = fill
    out[:, pt:pt + h, pl + w:] = fill
    out[:, pt:pt + h, pl:pl + w, :] = x
    return out


def _windows(x, kh, kw, strides, dilation, out_hw, groups=1):
    """The strided view (N, Ho, Wo, kh, kw, C) of every window of ``x`` (N, H, W, C),
    or (N, Ho, Wo, kh, kw, G, C/G) when ``groups`` > 1."""
    n, _, _, c = x.shape
    s_n, s_h, s_w, s_c = x.strides
    (sh, sw), (dh, dw), (ho, wo) = strides, dilation, out_hw
    shape = (n, ho, wo, kh, kw)
    steps = (s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw)
    if groups == 1:
        shape, steps = shape + (c,), steps + (s_c,)
    else:
        shape, steps = shape + (groups, c // groups), steps + (s_c * (c // groups), s_c)
    # read only by convention (CuPy's as_strided has no ``writeable`` flag): nothing writes through it
    return B.xp.lib.stride_tricks.as_strided(x, shape, steps)


def _tap(i: int, dilation: int, stride: int, n_out: int) -> slice:
    """The input rows (or columns) that kernel tap ``i`` reads for ``n_out`` outputs."""
    start = i * dilation
    return slice(start, start + (n_out - 1) * stride + 1, stride)


def _scatter_taps(rows, k_taps, shape, kh, kw, strides, dilation, out_hw, groups=1):
    """col2im: a zero array of ``shape`` (N, Hp, Wp, C) plus, for every kernel tap t = i·kw + j,
    the block ``rows @ k_taps[t]`` (one row per output pixel, C columns) added at the input
    pixels that tap reads — one matmul and one slice-add per tap, so overlapping windows
    accumulate. With ``groups`` > 1, ``rows`` is (G, M, Fg) and ``k_taps`` (taps, G, Fg, C/G).

    A loop over the taps measures faster than one matmul for all taps followed by the
    scatter: each tap's block is contiguous and small enough to stay in cache.
    """
    xp = B.xp
    buf = xp.zeros(shape, dtype=rows.dtype)
    n, _, _, c = shape
    (sh, sw), (dh, dw), (ho, wo) = strides, dilation, out_hw
    target = buf if groups == 1 else buf.reshape(shape[:3] + (groups, c // groups))
    for t in range(kh * kw):
        i, j = divmod(t, kw)
        block = xp.matmul(rows, k_taps[t])
        if groups == 1:
            block = block.reshape(n, ho, wo, c)
        else:
            block = block.reshape(groups, n, ho, wo, c // groups).transpose(1, 2, 3, 0, 4)
        target[:, _tap(i, dh, sh, ho), _tap(j, dw, sw, wo)] += block
    return buf


# ------------------------------------------------------------------- the conv kernel


NARROW_CHANNELS = 4
"""Up to this many input channels a convolution builds its columns (and scatters its input gradient)
in a channel-major layout, where every copy moves whole output rows instead of C-element runs."""


DIRECT_ACTIVATIONS = {None: 0, "relu": 1, "tanh": 2}
"""The fused activations the direct kernels take, by the code they get (relu applied and differentiated
in the kernels, tanh differentiated there)."""

DIRECT_FILTERS = 8
"""Stride-1 convolutions with up to this many filters run the compiled direct kernels
(:func:`_direct_conv`) when the compiled path is on: the column matrix's matmul has so few output
columns that it runs far below the BLAS's speed, and building the columns costs more than the
matmul (measured on one thread, forward + backward of a 3×3 convolution on 100 samples of 24×24:
4 → 8 channels 4.7 → 2.6 ms, 16 → 4 channels 13.1 → 6.5 ms; at 16 filters the two are even)."""


def _conv_forward(x, kernel, bias, strides, pads, dilation, groups, need, activation=None, max_pool=None):
    """Convolution of ``x`` (N, H, W, C) with ``kernel`` (kh, kw, C/groups, F), NHWC, plus ``bias``
    (F,) and a fused activation (a name from ``nn.FUSED_ACTIVATIONS``) applied in place.

    ``max_pool``: None, or ``(pool_size, strides)`` of a 'valid' max pooling of the output, for a
    convolution that needs no gradient (``need`` all False): the output returned is the pooled one. On
    the compiled column path each block's output rows are pooled while they are in cache, into the
    pooled output; the convolution's whole output is never written (nor read back by the pooling).

    ``need`` = (dx, dkernel, dbias) flags. Returns the output (N, Ho, Wo, F) and
    ``backward(g) -> (dx, dkernel, dbias)`` (None where not needed).

    Without groups the work is cache-blocked: a block of samples at a time (``B.block_rows``) has
    its columns built into one reused buffer, multiplied straight into the output rows, and gets
    its bias and activation while it is still in cache. The columns are not kept: the backward
    pass rebuilds them block by block (a copy that costs a few percent of the matmuls) — so a
    layer holds no (N·Ho·Wo, kh·kw·C) array between the passes. Stride-1 convolutions with few filters
    (:data:`DIRECT_FILTERS`) take the compiled direct kernels instead (:func:`_direct_conv`), and
    grouped ones :func:`_grouped_conv`.
    """
    xp = B.xp
    xpad = _pad_nhwc(x, pads)
    n, hp, wp, c = xpad.shape
    kh, kw, cg, f = kernel.shape
    (sh, sw), (dh, dw) = strides, dilation
    ho = (hp - (kh - 1) * dh - 1) // sh + 1
    wo = (wp - (kw - 1) * dw - 1) // sw + 1
    assert ho > 0 and wo > 0, "conv: the kernel is larger than the padded input"
    assert c == cg * groups, "conv: input channels do not match the kernel"
    need_x, need_k, need_b = need
    act = nn.fused_activation(activation)
    dtype = xp.result_type(xpad.dtype, kernel.dtype)
    narrow = cg <= NARROW_CHANNELS
    # narrow convolutions copy whole rows in NumPy as fast as a compiled loop does (measured): no kernels
    compiled = None if narrow or xpad.dtype != dtype else jit.kernels("conv", xpad)
    if max_pool is not None:  # pooled block by block on the compiled column path; else the two ops
        assert not any(need), "conv: a pooled output has no backward"
        (pkh, pkw), (psh, psw) = max_pool
        if (compiled is None or n == 0 or ho < pkh or wo < pkw or groups != 1 or f < POOL_KERNEL_CHANNELS
                or (sh == sw == 1 and f <= DIRECT_FILTERS)):
            out, _ = _conv_forward(xpad, kernel, bias, strides, ((0, 0), (0, 0)), dilation, groups, need, activation)
            return max_pool2d(Tensor(out), *max_pool).data, None
    if groups != 1:
        return _grouped_conv(xpad, kernel, bias, strides, dilation, groups, (ho, wo), need, act, x.shape, pads)
    code = DIRECT_ACTIVATIONS.get(activation if act is not None else None)
    if sh == sw == 1 and f <= DIRECT_FILTERS and code is not None and xpad.dtype == kernel.dtype:
        direct = jit.kernels("conv", xp.empty(1, dtype=dtype))  # any layout: the kernels get their own copies
        # a non-finite weight would meet the zeros of the direct input gradient's padding (NaN, not NumPy's sums)
        if direct is not None and bool(xp.isfinite(kernel).all()):
            return _direct_conv(direct, xpad, kernel, bias, dilation, (ho, wo), need, act, code, x.shape, pads)
    taps, k_size = kh * kw, kh * kw * cg
    k_mat = kernel.reshape(k_size, f)
    pixels = ho * wo
    micro = _microkernel_plan(xpad, kernel, bias, strides, dilation, (ho, wo))
    if micro is not None:  # the kernel reads the input and the kernel matrix through raw pointers
        xpad, k_mat = xp.ascontiguousarray(xpad), xp.ascontiguousarray(k_mat)
    step, parts = parallel.sample_blocks(n, pixels * k_size * dtype.itemsize)
    if narrow and (micro is None or need_k):  # (the columns' one reader: the forward and the kernel's gradient)
        # channel-major input: every (tap, channel) row of the columns is one copy of long rows
        x_cm = xp.ascontiguousarray(xpad.transpose(3, 0, 1, 2))  # (C, N, Hp, Wp)
    geometry = (kh, kw, sh, sw, dh, dw, ho, wo)

    def new_columns(ones_row=False):
        """A column buffer for one thread's blocks (transposed, (kh·kw·C, rows), when narrow). With
        ``ones_row`` (narrow only) one more row of ones: ``cols · g`` then ends with the bias gradient."""
        if not narrow:
            return xp.empty((step * pixels, k_size), dtype=dtype)
        cols = xp.empty((k_size + ones_row, step * pixels), dtype=dtype)
        if ones_row:
            cols[k_size] = 1
        return cols

    def fill_columns(cols, start, stop):
        """The column matrix (rows, kh·kw·C) of samples start:stop, built in ``cols`` (a transposed
        view when narrow)."""
        if compiled is not None:
            compiled.im2col(xpad, start, stop, *geometry, cols)
            return cols[:(stop - start) * pixels]
        if narrow:
            block = cols[:k_size, :(stop - start) * pixels]
            per_tap = block.reshape(taps, cg, stop - start, ho, wo)
            for t in range(taps):
                i, j = divmod(t, kw)
                per_tap[t] = x_cm[:, start:stop, _tap(i, dh, sh, ho), _tap(j, dw, sw, wo)]
            return block.T
        block = cols[:(stop - start) * pixels]
        block.reshape(stop - start, ho, wo, kh, kw, cg)[...] = _windows(xpad[start:stop], kh, kw, strides,
                                                                        dilation, (ho, wo))
        return block

    if max_pool is not None:
        pooled = xp.empty((n, (ho - pkh) // psh + 1, (wo - pkw) // psw + 1, f), dtype=dtype)
    else:
        out = xp.empty((n, ho, wo, f), dtype=dtype)

    def forward_part(part):
        cols = new_columns() if micro is None else None
        block = xp.empty((step, ho, wo, f), dtype=dtype) if max_pool is not None else None
        for start, stop in part:
            rows = (out[start:stop] if block is None else block[:stop - start]).reshape(-1, f)
            if micro is not None:  # the bias and a relu added by the kernel
                kernels, offsets, bias_c = micro
                kernels.window_product(xpad[start:stop], *offsets, k_mat, rows.reshape(stop - start, pixels, f),
                                       bias_c, activation == "relu")
                if act is not None and activation != "relu":
                    act[0](rows)
            else:
                xp.matmul(fill_columns(cols, start, stop), k_mat, out=rows)
                if act is not None:
                    act[0](rows, bias)
                elif bias is not None:
                    nn.add_bias(rows, bias)
            if block is not None:
                compiled.max_pool(block[:stop - start], pkh, pkw, psh, psw, pooled[start:stop])

    parallel.run(forward_part, parts)
    if max_pool is not None:
        return pooled, None
    (pt, _), (pl, _) = pads
    h, w = x.shape[1], x.shape[2]

    def backward(g):
        g = xp.ascontiguousarray(g, dtype=dtype)
        narrow_kernels = None
        micro_k, micro_x = _micro_gradients(micro, narrow, need_k, need_x, kernel, (hp, wp), strides, dilation,
                                            (ho, wo), pads, (h, w))
        if need_x and micro_x is not None:
            dx_out, k_taps = xp.empty((n, h, w, c), dtype=dtype), None
        elif need_x:  # narrow: col2im in the channel-major layout, long contiguous rows again
            dpad = xp.empty((c, n, hp, wp) if narrow else xpad.shape, dtype=dtype)  # zeroed block by block
            if narrow:
                narrow_kernels = jit.kernels("conv", dpad)
            k_taps = (None if narrow or compiled is not None
                      else xp.ascontiguousarray(kernel.reshape(taps, cg, f).transpose(0, 2, 1)))
        # narrow: the bias gradient comes with dkernel's matmul, from a row of ones under the columns
        joint = narrow and need_k and need_b

        def backward_part(part):
            """This part's blocks: their dx rows written, (dkernel, dbias) partial sums returned."""
            dk = xp.zeros((k_size + joint, f), dtype=dtype) if need_k else None
            db = xp.zeros(f, dtype=dtype) if need_b and not joint else None
            ones = xp.ones(step * pixels, dtype=dtype) if db is not None else None
            cols = (new_columns(ones_row=joint) if (need_k and micro_k is None) or (need_x and micro_x is None)
                    else None)
            tap_rows = xp.empty((step * pixels, cg), dtype=dtype) if need_x and k_taps is not None else None
            act_rows = xp.empty((step * pixels, f), dtype=dtype) if act is not None else None
            g_pad = None if micro_x is None else xp.zeros((step, *micro_x[3]), dtype=dtype)
            for start, stop in part:
                gz = g[start:stop].reshape(-1, f)
                if act is not None:
                    gz = act[1](gz, out[start:stop].reshape(-1, f), act_rows[:len(gz)])
                if db is not None:
                    db += ones[:len(gz)] @ gz
                if joint:
                    fill_columns(cols, start, stop)
                    dk += cols[:, :len(gz)] @ gz
                elif micro_k is not None:  # rows: the kernel's (tap, channel)s; reduced over the block's pixels
                    kernel_rows, row_segments, seg_len, step_k = micro_k
                    micro[0].window_product(xpad[start:stop].reshape(1, -1), kernel_rows, row_segments(stop - start),
                                            seg_len, gz, dk[None], accumulate=True, step=step_k)
                elif need_k:
                    dk += fill_columns(cols, start, stop).T @ gz
                if not need_x:
                    continue
                if micro_x is not None:  # the output gradient, padded, convolved with the flipped kernel
                    offsets, segments, k_flip, _ = micro_x
                    interior = g_pad[:stop - start, kh - 1:kh - 1 + ho, kw - 1:kw - 1 + wo]
                    interior[...] = gz.reshape(stop - start, ho, wo, f)
                    micro[0].window_product(g_pad[:stop - start], offsets, segments, kw * f, k_flip,
                                            dx_out[start:stop].reshape(stop - start, h * w, c))
                    continue
                if narrow and narrow_kernels is not None:  # zeroes and fills the samples' planes itself
                    xp.matmul(k_mat, gz.T, out=cols[:k_size, :len(gz)])  # (taps·C, rows)
                    narrow_kernels.col2im_channel_major(cols, start, stop, *geometry, dpad)
                    continue
                if narrow:
                    dpad[:, start:stop] = 0
                else:
                    dpad[start:stop] = 0
                # col2im: each tap's block g · kernel[i, j]ᵀ added onto the pixels that tap read
                if compiled is not None:  # all taps in one matmul, scattered by the compiled kernel
                    block = xp.matmul(gz, k_mat.T, out=cols[:len(gz)])
                    compiled.col2im_add(block, start, stop, *geometry, dpad)
                    continue
                if narrow:
                    block = xp.matmul(k_mat, gz.T, out=cols[:k_size, :len(gz)])  # (taps·C, rows)
                    per_tap = block.reshape(taps, cg, stop - start, ho, wo)
                    for t in range(taps):
                        i, j = divmod(t, kw)
                        dpad[:, start:stop, _tap(i, dh, sh, ho), _tap(j, dw, sw, wo)] += per_tap[t]
                    continue
                target = dpad[start:stop]
                block = tap_rows[:len(gz)]
                for t in range(taps):
                    i, j = divmod(t, kw)
                    xp.matmul(gz, k_taps[t], out=block)
                    target[:, _tap(i, dh, sh, ho), _tap(j, dw, sw, wo)] += block.reshape(stop - start, ho, wo, cg)
            return dk, db

        partials = parallel.run(backward_part, parts)
        dk = sum(p[0] for p in partials) if need_k else None
        db = sum(p[1] for p in partials) if need_b and not joint else None
        if joint:
            dk, db = dk[:k_size], dk[k_size]
        dx = None
        if need_x and micro_x is not None:
            dx = dx_out
        elif need_x:
            dx = dpad[:, :, pt:pt + h, pl:pl + w].transpose(1, 2, 3, 0) if narrow else dpad[:, pt:pt + h, pl:pl + w, :]
        return dx, (dk.reshape(kernel.shape) if need_k else None), db

    return out, backward


def _micro_gradients(micro, narrow, need_k, need_x, kernel, padded_hw, strides, dilation, out_hw, pads, in_hw):
    """How the register-blocked kernel computes a convolution's gradients, where it does (else None).

    Kernel gradient (not narrow): ``(kernel_rows, row_segments, seg_len, step)`` — the rows of the
    product are the kernel's (tap, channel)s, each reading its value at every output pixel (``step``
    apart along an output row), and ``row_segments(samples)`` the offsets of those rows' starts for a
    block of samples; ``seg_len`` = Wo. Input gradient (stride 1, no dilation, a multiple of 16
    channels, a finite kernel: the zeros around g would turn an infinite weight into NaN where the
    column path adds nothing): ``(pixel_offsets, segments, flipped kernel (kh·kw·F, C), padded g's
    shape (Ho + 2(kh − 1), Wo + 2(kw − 1), F))``."""
    if micro is None or narrow:
        return None, None
    xp = B.xp
    kernels = micro[0]
    kh, kw, c, f = kernel.shape
    (hp, wp), (sh, sw), (dh, dw), (ho, wo) = padded_hw, strides, dilation, out_hw
    grad_k = grad_x = None
    if need_k:
        kernel_rows, per_row = _cached_offsets(("dkernel", wp, kernel.shape, strides, dilation, out_hw), lambda: (
            (_tap_offsets(kernel.shape, dilation, wp)[:, :, None] + xp.arange(c)).ravel(),
            (xp.arange(ho) * (sh * wp * c)).astype(xp.int64)))

        def row_segments(samples):
            return _cached_offsets(("dkernel-rows", hp, wp, c, ho, sh, samples),
                                   lambda: ((xp.arange(samples) * (hp * wp * c))[:, None] + per_row).ravel())

        grad_k = (kernel_rows, row_segments, wo, sw * c)
    if need_x and sh == sw == dh == dw == 1 and c % kernels.LANES == 0 and bool(xp.isfinite(kernel).all()):
        (pt, _), (pl, _) = pads
        (h, w), g_w = in_hw, wo + 2 * (kw - 1)
        offsets, segments = _cached_offsets(("dx", kernel.shape, out_hw, pads, in_hw), lambda: (
            (((xp.arange(h) + pt)[:, None] * g_w + (xp.arange(w) + pl)[None, :]) * f).ravel().astype(xp.int64),
            (xp.arange(kh) * (g_w * f)).astype(xp.int64)))
        k_flip = xp.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(-1, c)
        grad_x = (offsets, segments, k_flip, (ho + 2 * (kh - 1), g_w, f))
    return grad_k, grad_x


def _microkernel_plan(xpad, kernel, bias, strides, dilation, out_hw):
    """The arguments of ``microkernel.window_product`` for this (ungrouped) convolution besides the input
    and the kernel matrix — (kernels, (pixel offsets, segment offsets, segment length), bias or None) —
    when the register-blocked kernel serves it: the compiled path on, float32, a multiple of
    ``microkernel.LANES`` filters, an AVX-512 CPU. Else None (the column path)."""
    xp = B.xp
    kh, kw, c, f = kernel.shape
    if xpad.dtype != xp.float32 or kernel.dtype != xp.float32 or (bias is not None and bias.dtype != xp.float32):
        return None
    kernels = jit.kernels("microkernel")
    # compiled here, before any parallel region calls them
    if kernels is None or f % kernels.LANES or not kernels.suited() or not kernels.prepare():
        return None
    wp = xpad.shape[2]
    (sh, sw), (dh, dw), (ho, wo) = strides, dilation, out_hw

    def build():
        pixel_offsets = ((xp.arange(ho)[:, None] * (sh * wp) + xp.arange(wo)[None, :] * sw) * c).ravel()
        if dw == 1:  # a kernel row's taps read kw·C contiguous values
            return pixel_offsets.astype(xp.int64), (xp.arange(kh) * (dh * wp * c)).astype(xp.int64), kw * c
        return pixel_offsets.astype(xp.int64), _tap_offsets(kernel.shape, dilation, wp).ravel(), c

    offsets = _cached_offsets(("forward", wp, kernel.shape, strides, dilation, out_hw), build)
    bias = None if bias is None else xp.ascontiguousarray(bias)
    return kernels, offsets, bias


_micro_offsets: dict = {}  # (use, geometry…) -> the offset arrays of a blocked convolution


def _cached_offsets(key, build):
    """``build()``'s offset arrays for a convolution geometry, made once (every step asks again)."""
    found = _micro_offsets.get(key)
    if found is None:
        if len(_micro_offsets) >= 192:
            _micro_offsets.clear()
        found = _micro_offsets[key] = build()
    return found


def _tap_offsets(kernel_shape, dilation, padded_width):
    """(kh, kw) int64: where each kernel tap's C values start in a channels-last input, relative to its
    window's start."""
    xp = B.xp
    kh, kw, c, _ = kernel_shape
    (dh, dw) = dilation
    return ((xp.arange(kh)[:, None] * (dh * padded_width) + xp.arange(kw)[None, :] * dw) * c).astype(xp.int64)


def _direct_conv(kernels, xpad, kernel, bias, dilation, out_hw, need, act, code, x_shape, pads):
    """The compiled stride-1 case of :func:`_conv_forward` for few filters: ``direct_conv`` and
    ``direct_conv_backward`` (``backend.kernels.conv``), with no column matrix. Blocks of samples as
    there, each block's channel-major copy of the input, bias, activation and gradients made while it
    is in cache (the activation's gradient and the bias gradient inside the backward kernel).
    ``code``: the activation's :data:`DIRECT_ACTIVATIONS` code."""
    xp = B.xp
    n, hp, wp, c = xpad.shape
    kh, kw, _, f = kernel.shape
    (dh, dw), (ho, wo) = dilation, out_hw
    need_x, need_k, need_b = need
    dtype = xpad.dtype
    x_cm = xp.empty((c, n, hp * wp), dtype=dtype)  # filled block by block by the forward kernel
    geometry = (kh, kw, dh, dw)
    _, parts = parallel.sample_blocks(n, (hp * wp * c + ho * wo * f) * dtype.itemsize)
    out = xp.empty((n, ho, wo, f), dtype=dtype)
    weights_t = xp.ascontiguousarray(kernel.reshape(-1, f).T)  # (F, kh·kw·C)
    bias_in = xp.empty(0, dtype=dtype) if bias is None else xp.ascontiguousarray(bias, dtype=dtype)

    def forward_part(part):
        for start, stop in part:
            kernels.direct_conv(xpad, x_cm, weights_t, bias_in, code, start, stop, *geometry, out)
            if act is not None and code != 1:  # the relu is the kernel's own
                act[0](out[start:stop])

    parallel.run(forward_part, parts)
    if not need_k:  # only the kernel gradient reads the input copy: keep its shape, not its memory
        x_cm = xp.empty((c, 0, hp * wp), dtype=dtype)
    (pt, _), (pl, _) = pads
    h, w = x_shape[1], x_shape[2]

    def backward(g):
        g = g.astype(dtype, copy=False)  # any strides: the kernel reads g once (a transposed input gradient as is)
        weights_in = (xp.ascontiguousarray(kernel.transpose(2, 0, 1, 3)).reshape(c, -1) if need_x
                      else xp.empty((0, 0), dtype=dtype))
        dx_cm = xp.empty((c, n, hp * wp) if need_x else (0, 0, 0), dtype=dtype)

        def gradients(exact, dx_cm, with_bias):
            def backward_part(part):
                dk = xp.zeros((kh * kw * c if need_k else 0, f), dtype=dtype)
                db = xp.zeros(f if with_bias else 0, dtype=dtype)
                for start, stop in part:
                    kernels.direct_conv_backward(x_cm, g, out, code, start, stop, weights_in, *geometry, wp, exact,
                                                 dk, db, dx_cm)
                return dk, db

            partials = parallel.run(backward_part, parts)
            return sum(p[0] for p in partials), sum(p[1] for p in partials)

        dk, db = gradients(False, dx_cm, need_b)
        if need_k and not bool(xp.isfinite(dk).all()):  # maybe NaN from the wide rows' padding: the exact sums
            dk, _ = gradients(True, xp.empty((0, 0, 0), dtype=dtype), False)
        dx = None
        if need_x:
            dx = dx_cm.reshape(c, n, hp, wp)[:, :, pt:pt + h, pl:pl + w].transpose(1, 2, 3, 0)
        return dx, (dk.reshape(kernel.shape) if need_k else None), (db if need_b else None)

    return out, backward


def _grouped_conv(xpad, kernel, bias, strides, dilation, groups, out_hw, need, act, x_shape, pads):
    """The ``groups`` > 1 case of :func:`_conv_forward` (depthwise and grouped convolutions): one
    batched matmul over the groups on the whole column array, kept for the kernel gradient."""
    xp = B.xp
    n, _, _, c = xpad.shape
    kh, kw, cg, f = kernel.shape
    ho, wo = out_hw
    m, taps, fg = n * ho * wo, kh * kw, f // groups
    k_size = taps * cg
    need_x, need_k, need_b = need
    view = _windows(xpad, kh, kw, strides, dilation, (ho, wo), groups)  # (N, Ho, Wo, kh, kw, G, Cg)
    cols = view.transpose(5, 0, 1, 2, 3, 4, 6).reshape(groups, m, k_size)
    k_groups = kernel.reshape(kh, kw, cg, groups, fg).transpose(3, 0, 1, 2, 4).reshape(groups, k_size, fg)
    out = xp.matmul(cols, k_groups).transpose(1, 0, 2).reshape(n, ho, wo, f)
    if act is not None:
        act[0](out, bias)
    elif bias is not None:
        nn.add_bias(out, bias)
    if not need_k:
        cols = None  # only the kernel gradient needs the columns: do not keep them alive
    pad_shape = xpad.shape
    (pt, _), (pl, _) = pads
    h, w = x_shape[1], x_shape[2]

    def backward(g):
        g2 = g.reshape(m, f)
        if act is not None:
            g2 = act[1](g2, out.reshape(m, f))
        dx = dk = db = None
        if need_b:
            db = g2.sum(axis=0)
        if need_k:
            gg = g2.reshape(m, groups, fg).transpose(1, 0, 2)
            dk = xp.matmul(cols.transpose(0, 2, 1), gg)  # (G, taps*Cg, Fg)
            dk = dk.reshape(groups, kh, kw, cg, fg).transpose(1, 2, 3, 0, 4).reshape(kernel.shape)
        if need_x:
            rows = g2.reshape(m, groups, fg).transpose(1, 0, 2)  # (G, M, Fg)
            k_taps = xp.ascontiguousarray(kernel.reshape(taps, cg, groups, fg).transpose(0, 2, 3, 1))
            dpad = _scatter_taps(rows, k_taps, pad_shape, kh, kw, strides, dilation, (ho, wo), groups)
            dx = dpad[:, pt:pt + h, pl:pl + w, :]
        return dx, dk, db

    return out, backward


def _conv(x, kernel, bias, rank, strides, padding, dilation, groups, data_format, kernel_in=None, kernel_out=None,
          activation=None, max_pool=None):
    """The shared conv1d / conv2d / depthwise node. ``kernel_in`` maps the kernel array to the
    (kh, kw, C/groups, F) layout, ``kernel_out`` maps that layout's gradient back; ``activation``
    names a fused activation (``nn.FUSED_ACTIVATIONS``); ``max_pool`` as in :func:`_conv_forward` (2-D,
    channels last, no gradient needed)."""
    x, kernel, bias = _operands(x, kernel, bias)
    data_format = check_data_format(data_format)
    xd = _to_nhwc(x.data, rank, data_format)
    if data_format == CHANNELS_FIRST:
        xd = B.xp.ascontiguousarray(xd)
    kd = kernel.data[None] if rank == 1 else kernel.data
    if kernel_in is not None:
        kd = kernel_in(kd)
    strides = (1,) + normalize_tuple(strides, 1, "strides") if rank == 1 else normalize_tuple(strides, 2, "strides")
    dilation = ((1,) + normalize_tuple(dilation, 1, "dilation_rate") if rank == 1
                else normalize_tuple(dilation, 2, "dilation_rate"))
    kh, kw = kd.shape[0], kd.shape[1]
    k_effs = ((kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1)
    if rank == 1:
        pads = ((0, 0),) + resolve_padding(padding, xd.shape[2:3], k_effs[1:], strides[1:])
    else:
        if isinstance(padding, str) and padding.lower() == "causal":
            raise ValueError("conv2d: 'causal' padding is only for 1-D convolutions")
        pads = resolve_padding(padding, xd.shape[1:3], k_effs, strides)
    need = (x.requires_grad, kernel.requires_grad, bias is not None and bias.requires_grad)
    if max_pool is not None or not _tensor.is_grad_enabled():  # (a pooled output's caller: no gradient is recorded)
        need = (False, False, False)
    out, conv_backward = _conv_forward(xd, kd, None if bias is None else bias.data, strides, pads, dilation,
                                       int(groups), need, activation, max_pool)
    if max_pool is not None:
        return Tensor(out)
    out = _from_nhwc(out, rank, data_format)

    def backward(g):
        dx, dk, db = conv_backward(_to_nhwc(g, rank, data_format))
        if dx is not None:
            dx = _from_nhwc(dx, rank, data_format)
        if dk is not None:
            if kernel_out is not None:
                dk = kernel_out(dk)
            dk = dk[0] if rank == 1 else dk
        return (dx, dk) if bias is None else (dx, dk, db)

    return make(out, (x, kernel) if bias is None else (x, kernel, bias), backward)


# ----------------------------------------------------------------------- public ops


def conv2d(x, kernel, bias=None, strides=(1, 1), padding="valid", dilation_rate=(1, 1), groups=1,
           data_format=CHANNELS_LAST, activation=None) -> Tensor:
    """2-D convolution (cross-correlation, as every framework) of ``x`` (N, H, W, C) or
    (N, C, H, W) with ``kernel`` (kh, kw, C/groups, filters), plus ``bias`` (filters,).

    ``padding``: 'valid', 'same' (TensorFlow's), an int, (ph, pw) or ((top, bottom), (left, right)).
    ``groups``: the channels split into that many groups, each convolved with its own
    filters/groups filters (output channel blocks in group order).
    ``activation``: None, or 'relu' / 'tanh' applied inside the node (``nn.FUSED_ACTIVATIONS``).
    """
    return _conv(x, kernel, bias, 2, strides, padding, dilation_rate, groups, data_format, activation=activation)


def conv2d_max_pool2d(x, kernel, bias=None, strides=(1, 1), padding="valid", dilation_rate=(1, 1),
                      activation=None, pool_size=(2, 2), pool_strides=None) -> Tensor:
    """``max_pool2d(conv2d(x, kernel, bias, strides, padding, dilation_rate, activation=activation), pool_size,
    pool_strides)``, channels last, 'valid' pooling: the same numbers. When nothing needs a gradient
    (inference), each cache block of the convolution's output is pooled while it is in cache, and the
    whole output is never written to memory nor read back (mnist_cnn's second convolution and its pooling
    at batch 1000: the output is 147 MB, the pooled one 37 MB). Otherwise, the two ops."""
    x, kernel, bias = _operands(x, kernel, bias)
    pool = normalize_tuple(pool_size, 2, "pool_size")
    pool_strides = pool if pool_strides is None else normalize_tuple(pool_strides, 2, "strides")
    if _tensor.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, kernel, bias)):
        out = conv2d(x, kernel, bias, strides, padding, dilation_rate, activation=activation)
        return max_pool2d(out, pool, pool_strides)
    return _conv(x, kernel, bias, 2, strides, padding, dilation_rate, 1, CHANNELS_LAST, activation=activation,
                 max_pool=(pool, pool_strides))


def conv1d(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1, groups=1,
           data_format=CHANNELS_LAST, activation=None) -> Tensor:
    """1-D convolution of ``x`` (N, L, C) or (N, C, L) with ``kernel`` (k, C/groups, filters).

    ``padding`` also takes 'causal': (k_eff − 1) zeros before the sequence, none after,
    so output t sees inputs ≤ t only. ``activation`` as in :func:`conv2d`.
    """
    return _conv(x, kernel, bias, 1, strides, padding, dilation_rate, groups, data_format, activation=activation)


def depthwise_conv2d(x, depthwise_kernel, bias=None, strides=(1, 1), padding="valid", dilation_rate=(1, 1),
                     data_format=CHANNELS_LAST) -> Tensor:
    """Depthwise 2-D convolution: each input channel c convolved with its own
    ``depthwise_kernel[:, :, c, :]`` (kh, kw, C, depth_multiplier); output channel
    c·depth_multiplier + m (TensorFlow's order). A conv2d with groups = C."""
    x, kernel, _ = _operands(x, depthwise_kernel, None)
    kh, kw, c, mult = kernel.shape
    channels = x.shape[1] if data_format == CHANNELS_FIRST else x.shape[-1]
    assert channels == c, "depthwise_conv2d: input channels do not match the kernel"
    return _conv(x, kernel, bias, 2, strides, padding, dilation_rate, c, data_format,
                 kernel_in=lambda k: k.reshape(kh, kw, 1, c * mult),
                 kernel_out=lambda dk: dk.reshape(kh, kw, c, mult))


def conv2d_transpose(x, kernel, bias=None, strides=(1, 1), padding="valid", output_padding=None,
                     dilation_rate=(1, 1), data_format=CHANNELS_LAST) -> Tensor:
    """Transposed 2-D convolution of ``x`` (N, H, W, C_in) with ``kernel`` (kh, kw, filters, C_in):
    the adjoint (the input gradient) of ``conv2d`` with that kernel, strides, dilation and
    TensorFlow's 'valid'/'same' padding, for an input of Keras's output length

    - no ``output_padding``: valid H·s + max(k_eff − s, 0), same H·s;
    - with ``output_padding`` p: (H − 1)·s + k_eff − 2·pad + p, pad = k_eff // 2 ('same') or 0.
    """
    x, kernel, bias = _operands(x, kernel, bias)
    xp = B.xp
    data_format = check_data_format(data_format)
    xd = xp.ascontiguousarray(_to_nhwc(x.data, 2, data_format))
    kd = kernel.data
    n, h, w, c_in = xd.shape
    kh, kw, f, kc = kd.shape
    assert kc == c_in, "conv2d_transpose: input channels do not match the kernel"
    strides = normalize_tuple(strides, 2, "strides")
    dilation = normalize_tuple(dilation_rate, 2, "dilation_rate")
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"conv2d_transpose: padding must be 'valid' or 'same', got {padding!r}")
    padding = padding.lower()
    out_pad = (None, None) if output_padding is None else normalize_tuple_nonneg(output_padding, 2, "output_padding")
    sizes = tuple(deconv_output_length(size, k, padding, op, s, d)
                  for size, k, op, s, d in zip((h, w), (kh, kw), out_pad, strides, dilation))
    k_effs = ((kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1)
    pads = resolve_padding(padding, sizes, k_effs, strides)
    for size, pad, k_eff, s, given in zip(sizes, pads, k_effs, strides, (h, w)):
        if conv_output_length(size, k_eff, s, pad) != given:
            raise ValueError(f"conv2d_transpose: an output of length {size} does not convolve back to the input "
                             f"length {given} with kernel {k_eff}, stride {s} and padding {padding!r}; "
                             f"choose another output_padding")
    # the buffer holds every pixel a window touches and the padded output
    buf_h = max(sizes[0] + sum(pads[0]), (h - 1) * strides[0] + k_effs[0])
    buf_w = max(sizes[1] + sum(pads[1]), (w - 1) * strides[1] + k_effs[1])
    (pt, _), (pl, _) = pads
    m, taps = n * h * w, kh * kw
    x2 = xd.reshape(m, c_in)
    k_taps = xp.ascontiguousarray(kd.reshape(taps, f, c_in).transpose(0, 2, 1))  # (taps, C_in, F)
    buf = _scatter_taps(x2, k_taps, (n, buf_h, buf_w, f), kh, kw, strides, dilation, (h, w))
    out = buf[:, pt:pt + sizes[0], pl:pl + sizes[1], :]
    out = out + bias.data if bias is not None else xp.ascontiguousarray(out)
    out = _from_nhwc(out, 2, data_format)
    need_x, need_k = x.requires_grad, kernel.requires_grad
    axes = _channel_axes(2, data_format)

    def backward(g):
        gd = _to_nhwc(g, 2, data_format)
        gbuf = xp.zeros((n, buf_h, buf_w, f), dtype=g.dtype)
        gbuf[:, pt:pt + sizes[0], pl:pl + sizes[1], :] = gd
        cols = _windows(gbuf, kh, kw, strides, dilation, (h, w)).reshape(m, taps * f)
        dx = dk = None
        if need_x:
            dx = _from_nhwc((cols @ kd.reshape(taps * f, c_in)).reshape(n, h, w, c_in), 2, data_format)
        if need_k:
            dk = (cols.T @ x2).reshape(kd.shape)
        if bias is None:
            return dx, dk
        return dx, dk, (g.sum(axis=axes) if bias.requires_grad else None)

    return make(out, (x, kernel) if bias is None else (x, kernel, bias), backward)


def normalize_tuple_nonneg(value, n: int, name: str) -> tuple:
    """Like :func:`normalize_tuple` but zeros allowed (output_padding, cropping)."""
    if isinstance(value, int):
        out = (int(value),) * n
    else:
        out = tuple(int(v) for v in value)
    if len(out) != n or min(out) < 0:
        raise ValueError(f"{name} must be a non-negative int or a tuple of {n} of them, got {value!r}")
    return out


# ---------------------------------------------------------------------------- pooling


POOL_KERNEL_CHANNELS = 8
"""Pooling runs its compiled kernels from this many channels up (they vectorise over the channels)."""


def _pool(x, rank, kind, pool_size, strides, padding, data_format):
    x = _t(x)
    xp = B.xp
    data_format = check_data_format(data_format)
    pool = normalize_tuple(pool_size, rank, "pool_size")
    strides = pool if strides is None else normalize_tuple(strides, rank, "strides")
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"{kind}_pool: padding must be 'valid' or 'same', got {padding!r}")
    if rank == 1:
        pool, strides = (1,) + pool, (1,) + strides
    xd = _to_nhwc(x.data, rank, data_format)
    n, h, w, c = xd.shape
    kh, kw = pool
    sh, sw = strides
    pads = resolve_padding(padding.lower(), (h, w), pool, strides)
    ho, wo = conv_output_length(h, kh, sh, pads[0]), conv_output_length(w, kw, sw, pads[1])
    assert ho > 0 and wo > 0, "pool: the pool is larger than the (padded) input"
    (pt, _), (pl, _) = pads
    taps = kh * kw
    xpad = _pad_nhwc(xd, pads, fill=-xp.inf if kind == "max" else 0.0)
    count = None
    if kind == "avg":
        if any(p for pair in pads for p in pair):
            # the number of real (unpadded) elements in each window, per axis, then their product
            def counts(size, k, s, n_out, before):
                start = xp.arange(n_out) * s - before
                return xp.minimum(start + k, size) - xp.maximum(start, 0)
            count = (counts(h, kh, sh, ho, pt)[:, None] * counts(w, kw, sw, wo, pl)[None, :]).astype(xpad.dtype)
            count = count[None, :, :, None]
        else:
            count = xp.asarray(taps, dtype=xpad.dtype)
    out = xp.empty((n, ho, wo, c), dtype=xpad.dtype)
    pad_shape = xpad.shape
    # the kernels vectorise over the channels: below 8 NumPy's whole-batch slices are faster (measured: max
    # pooling 2x2 of (100, 24, 24, 4) backward 621 µs against 1,356; of (100, 22, 22, 8) 840 against 447)
    compiled = jit.kernels("conv", xpad) if c >= POOL_KERNEL_CHANNELS else None
    # blocks of samples, spread over the threads (NumPy's loops and the kernels use one core each)
    parts = [[slice(start, stop) for start, stop in part] for part in parallel.sample_blocks(n, xpad[0].nbytes)[1]]
    if compiled is not None:
        inv_count = None
        if kind == "avg":
            inv_count = 1 / xp.broadcast_to(count, (1, ho, wo, 1))[0, :, :, 0]  # (Ho, Wo), the input's dtype

        def compiled_forward(part):
            for s in part:
                if kind == "avg":
                    compiled.avg_pool(xpad[s], kh, kw, sh, sw, inv_count, out[s])
                else:
                    compiled.max_pool(xpad[s], kh, kw, sh, sw, out[s])

        parallel.run(compiled_forward, parts)

        def backward(g):
            gd = xp.ascontiguousarray(_to_nhwc(g, rank, data_format))
            if gd.dtype != out.dtype:
                gd = gd.astype(out.dtype)
            buf = xp.empty(pad_shape, dtype=out.dtype)

            def compiled_backward(part):
                for s in part:
                    if kind == "max":
                        compiled.max_pool_grad(xpad[s], out[s], gd[s], kh, kw, sh, sw, buf[s])
                    else:
                        compiled.avg_pool_grad(gd[s], kh, kw, sh, sw, inv_count, buf[s])

            parallel.run(compiled_backward, parts)
            return (_from_nhwc(buf[:, pt:pt + h, pl:pl + w, :], rank, data_format),)

        return make(_from_nhwc(out, rank, data_format), (x,), backward)

    def tap_view(a, t, samples):
        i, j = divmod(t, kw)
        return a[samples, _tap(i, 1, sh, ho), _tap(j, 1, sw, wo), :]

    def forward_part(part):
        for samples in part:
            o = out[samples]
            o[...] = tap_view(xpad, 0, samples)
            for t in range(1, taps):
                if kind == "max":
                    xp.maximum(o, tap_view(xpad, t, samples), out=o)
                else:
                    o += tap_view(xpad, t, samples)
            if kind == "avg":
                o /= count

    parallel.run(forward_part, parts)
    result = _from_nhwc(out, rank, data_format)
    disjoint = sh >= kh and sw >= kw  # every input pixel in at most one window

    def backward(g):
        gd = _to_nhwc(g, rank, data_format)
        buf = xp.zeros(pad_shape, dtype=g.dtype)

        def backward_part(part):
            for samples in part:
                g_block = gd[samples]
                share = g_block / count if kind == "avg" else None
                taken = None  # max: the windows whose winner an earlier tap already was
                for t in range(taps):
                    target = tap_view(buf, t, samples)
                    if kind == "max":  # the winner is the first tap equal to the maximum
                        hit = tap_view(xpad, t, samples) == out[samples]
                        if taken is None:
                            taken = hit.copy() if taps > 1 else hit
                        elif t < taps - 1:
                            xp.greater(hit, taken, out=hit)  # hit and not taken
                            taken |= hit
                        else:
                            xp.greater(hit, taken, out=hit)
                        if disjoint:  # the taps' slices do not overlap: write in place, no temporary
                            xp.multiply(g_block, hit, out=target)
                        else:
                            target += g_block * hit
                    elif disjoint:
                        target[...] = share
                    else:
                        target += share

        parallel.run(backward_part, parts)
        return (_from_nhwc(buf[:, pt:pt + h, pl:pl + w, :], rank, data_format),)

    return make(result, (x,), backward)


def max_pool2d(x, pool_size=(2, 2), strides=None, padding="valid", data_format=CHANNELS_LAST) -> Tensor:
    """Maximum over each window; the gradient goes to the first maximal element of each window."""
    return _pool(x, 2, "max", pool_size, strides, padding, data_format)


def avg_pool2d(x, pool_size=(2, 2), strides=None, padding="valid", data_format=CHANNELS_LAST) -> Tensor:
    """Mean over each window; with 'same' padding the mean of the real elements only."""
    return _pool(x, 2, "avg", pool_size, strides, padding, data_format)


def max_pool1d(x, pool_size=2, strides=None, padding="valid", data_format=CHANNELS_LAST) -> Tensor:
    return _pool(x, 1, "max", pool_size, strides, padding, data_format)


def avg_pool1d(x, pool_size=2, strides=None, padding="valid", data_format=CHANNELS_LAST) -> Tensor:
    return _pool(x, 1, "avg", pool_size, strides, padding, data_format)


# ------------------------------------------------------------------ resampling, padding


def _spatial_axes(data_format: str) -> tuple:
    return (1, 2) if data_format == CHANNELS_LAST else (2, 3)


def upsample2d(x, size=(2, 2), data_format=CHANNELS_LAST, interpolation="nearest") -> Tensor:
    """Repeat every row ``size[0]`` times and every column ``size[1]`` times (nearest neighbour);
    the gradient of an input pixel is the sum over its copies."""
    x = _t(x)
    xp = B.xp
    data_format = check_data_format(data_format)
    if interpolation != "nearest":
        raise ValueError(f"upsample2d: only interpolation='nearest' is supported, got {interpolation!r}")
    sh, sw = normalize_tuple(size, 2, "size")
    ah, aw = _spatial_axes(data_format)
    out = xp.repeat(xp.repeat(x.data, sh, axis=ah), sw, axis=aw)
    shape = x.shape

    def backward(g):
        split = list(shape)
        split[aw:aw + 1] = [shape[aw], sw]
        split[ah:ah + 1] = [shape[ah], sh]
        return (g.reshape(split).sum(axis=(ah + 1, aw + 2)),)

    return make(out, (x,), backward)


def zero_pad2d(x, padding=((1, 1), (1, 1)), data_format=CHANNELS_LAST) -> Tensor:
    """Zeros around the image: ``padding`` ((top, bottom), (left, right)); backward crops."""
    x = _t(x)
    xp = B.xp
    data_format = check_data_format(data_format)
    (pt, pb), (pl, pr) = padding
    ah, aw = _spatial_axes(data_format)
    widths = [(0, 0)] * 4
    widths[ah], widths[aw] = (pt, pb), (pl, pr)
    out = xp.pad(x.data, widths)
    h, w = x.shape[ah], x.shape[aw]
    inner = [slice(None)] * 4
    inner[ah], inner[aw] = slice(pt, pt + h), slice(pl, pl + w)
    inner = tuple(inner)
    return make(out, (x,), lambda g: (g[inner],))


def crop2d(x, cropping=((0, 0), (0, 0)), data_format=CHANNELS_LAST) -> Tensor:
    """Cut ((top, bottom), (left, right)) pixels off the image; backward pads with zeros."""
    x = _t(x)
    xp = B.xp
    data_format = check_data_format(data_format)
    (ct, cb), (cl, cr) = cropping
    ah, aw = _spatial_axes(data_format)
    h, w = x.shape[ah], x.shape[aw]
    index = [slice(None)] * 4
    index[ah], index[aw] = slice(ct, h - cb), slice(cl, w - cr)
    index = tuple(index)
    shape = x.shape

    def backward(g):
        grad = xp.zeros(shape, dtype=g.dtype)
        grad[index] = g
        return (grad,)

    return make(x.data[index], (x,), backward)
