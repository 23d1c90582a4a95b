"""Primitive ops: forward on arrays, backward derived by hand.

Each op takes Tensors (or array-likes / python numbers, treated as
constants), computes the output array with the backend module ``B.xp``, and
returns ``make(out, parents, backward)``. Binary ops follow NumPy
broadcasting; their backward sums each gradient back to its operand's shape
(:func:`unbroadcast`).
"""

from __future__ import annotations

import builtins
import math

from .. import backend as B
from ..backend import jit, parallel
from .replay import record_module_ops
from .tensor import Tensor, _as_data, is_grad_enabled, make

# --------------------------------------------------------------------------- helpers


def _t(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _scalar_dtype(scalar, other):
    """The dtype a python number takes next to the array ``other``: ``other``'s own,
    except that a python float next to an integer array becomes ``floatx``."""
    if isinstance(scalar, float) and other.dtype.kind not in "fc":
        return B.floatx()
    return other.dtype


def _constant_like(x, ref: Tensor) -> Tensor:
    """``x`` (not a Tensor) as a constant operand next to the Tensor ``ref``.

    A python number takes ``ref``'s dtype (:func:`_scalar_dtype`); next to a float
    Tensor, a numeric array constant takes its dtype too, so that a float64 (or
    integer) NumPy array never silently upcasts float32 data.
    """
    if isinstance(x, (int, float)):
        return Tensor(_as_data(x, _scalar_dtype(x, ref)))
    data = _as_data(x)
    if ref.dtype.kind == "f" and data.dtype.kind in "fiub" and data.dtype != ref.dtype:
        data = data.astype(ref.dtype)
    return Tensor(data)


def _binary_operands(a, b):
    """Tensors for a binary op; a constant (python number, array) takes the other's dtype."""
    if isinstance(a, Tensor) and not isinstance(b, Tensor):
        b = _constant_like(b, a)
    elif isinstance(b, Tensor) and not isinstance(a, Tensor):
        a = _constant_like(a, b)
    elif not isinstance(a, Tensor):
        a, b = Tensor(a), Tensor(b)
    return a, b


def _operand_list(items) -> tuple:
    """Tensors for concatenate/stack: constants take the dtype of the first float Tensor among them."""
    ref = next((t for t in items if isinstance(t, Tensor) and t.dtype.kind == "f"), None)
    if ref is None:
        return tuple(_t(t) for t in items)
    return tuple(t if isinstance(t, Tensor) else _constant_like(t, ref) for t in items)


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched, back to ``shape``.

    Leading axes added to a contiguous float32/float64 gradient (a bias's) are summed as one product with ones
    (BLAS's matrix-vector product: (4096, 65) 89 → 20 µs; NumPy sums down the rows one by one, no more
    accurately)."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0 and grad.shape[extra:] == shape and grad.dtype.kind == "f" and grad.flags.c_contiguous \
            and grad.size >= SUM_BY_PRODUCT:
        return B.first_axis_sums(grad.reshape(-1, math.prod(shape))).reshape(shape)
    if extra == 1 and grad.shape[1:] == shape:  # one leading axis added (a bias): one reduction
        return grad.sum(axis=0)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


SUM_BY_PRODUCT = 1 << 12
"""From this many values :func:`unbroadcast` sums added leading axes as a product with ones."""


def _normalize_axis(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if not isinstance(axis, (tuple, list)):
        axis = (axis,)  # an int, or a NumPy integer
    return tuple(int(a) % ndim if ndim else int(a) for a in axis)


def _expand_reduced(g, shape, axis, keepdims):
    """Reshape a reduced gradient so that it broadcasts against the input's ``shape``."""
    if keepdims or g.ndim == len(shape):
        return g
    axes = _normalize_axis(axis, len(shape))
    kept = [1 if i in axes else n for i, n in enumerate(shape)]
    return g.reshape(kept)


# ------------------------------------------------------------------------ arithmetic


def add(a, b) -> Tensor:
    a, b = _binary_operands(a, b)
    return make(a.data + b.data, (a, b), lambda g: (unbroadcast(g, a.shape), unbroadcast(g, b.shape)))


def sub(a, b) -> Tensor:
    a, b = _binary_operands(a, b)
    return make(a.data - b.data, (a, b), lambda g: (unbroadcast(g, a.shape), unbroadcast(-g, b.shape)))


def mul(a, b) -> Tensor:
    a, b = _binary_operands(a, b)

    def backward(g):
        return (
            unbroadcast(g * b.data, a.shape) if a.requires_grad else None,
            unbroadcast(g * a.data, b.shape) if b.requires_grad else None,
        )

    return make(a.data * b.data, (a, b), backward)


def div(a, b) -> Tensor:
    a, b = _binary_operands(a, b)
    out = a.data / b.data

    def backward(g):
        return (
            unbroadcast(g / b.data, a.shape) if a.requires_grad else None,
            unbroadcast(-g * out / b.data, b.shape) if b.requires_grad else None,
        )

    return make(out, (a, b), backward)


def neg(a) -> Tensor:
    a = _t(a)
    return make(-a.data, (a,), lambda g: (-g,))


def pow(a, b) -> Tensor:
    """``a ** b``; d/da = b·a^(b−1), d/db = a^b·log a."""
    a, b = _binary_operands(a, b)
    out = a.data**b.data

    def backward(g):
        ga = gb = None
        if a.requires_grad:
            ga = unbroadcast(g * b.data * a.data ** (b.data - 1), a.shape)
        if b.requires_grad:
            xp = B.xp
            log_a = xp.log(xp.where(a.data > 0, a.data, 1))
            gb = unbroadcast(g * out * log_a, b.shape)
        return ga, gb

    return make(out, (a, b), backward)


def exp(a) -> Tensor:
    a = _t(a)
    out = B.xp.exp(a.data)
    return make(out, (a,), lambda g: (g * out,))


def log(a) -> Tensor:
    a = _t(a)
    return make(B.xp.log(a.data), (a,), lambda g: (g / a.data,))


def log1p(a) -> Tensor:
    a = _t(a)
    return make(B.xp.log1p(a.data), (a,), lambda g: (g / (1 + a.data),))


def sqrt(a) -> Tensor:
    a = _t(a)
    out = B.xp.sqrt(a.data)
    return make(out, (a,), lambda g: (g / (2 * out),))


def square(a) -> Tensor:
    a = _t(a)
    return make(a.data * a.data, (a,), lambda g: (2 * g * a.data,))


def abs(a) -> Tensor:
    a = _t(a)
    return make(B.xp.abs(a.data), (a,), lambda g: (g * B.xp.sign(a.data),))


def sign(a) -> Tensor:
    """The sign, a constant: its gradient is zero almost everywhere."""
    a = _t(a)
    return Tensor(B.xp.sign(a.data))


def _select(a, b, a_wins, tie):
    """Shared backward of maximum/minimum: the winner takes g, ties split it."""
    a, b = _binary_operands(a, b)
    xp = B.xp
    out = xp.where(a_wins, a.data, b.data)

    def backward(g):
        share_a = a_wins.astype(g.dtype) + tie.astype(g.dtype) * 0.5
        return (
            unbroadcast(g * share_a, a.shape) if a.requires_grad else None,
            unbroadcast(g * (1 - share_a), b.shape) if b.requires_grad else None,
        )

    return make(out, (a, b), backward)


def maximum(a, b) -> Tensor:
    """Elementwise maximum; at a tie each operand gets half the gradient (as torch)."""
    a, b = _binary_operands(a, b)
    return _select(a, b, a.data > b.data, a.data == b.data)


def minimum(a, b) -> Tensor:
    """Elementwise minimum; at a tie each operand gets half the gradient (as torch)."""
    a, b = _binary_operands(a, b)
    return _select(a, b, a.data < b.data, a.data == b.data)


def where(condition, a, b) -> Tensor:
    """``a`` where ``condition`` holds, else ``b``; the condition carries no gradient."""
    a, b = _binary_operands(a, b)
    cond = _as_data(condition).astype(bool)
    xp = B.xp

    def backward(g):
        zero = xp.zeros((), dtype=g.dtype)
        return (
            unbroadcast(xp.where(cond, g, zero), a.shape) if a.requires_grad else None,
            unbroadcast(xp.where(cond, zero, g), b.shape) if b.requires_grad else None,
        )

    return make(xp.where(cond, a.data, b.data), (a, b), backward)


def clip(a, min_value, max_value) -> Tensor:
    """Clamp to [min_value, max_value]; the gradient passes where the input lies inside."""
    a = _t(a)
    xp = B.xp
    d = a.data
    # bounds take the input's dtype (a numpy float64 bound must not upcast float32 data)
    lo = None if min_value is None else _as_data(min_value, d.dtype)
    hi = None if max_value is None else _as_data(max_value, d.dtype)
    out = d
    inside = xp.ones(d.shape, dtype=bool)
    if lo is not None:
        out = xp.maximum(out, lo)
        inside = inside & (d >= lo)
    if hi is not None:
        out = xp.minimum(out, hi)
        inside = inside & (d <= hi)
    if out is d:
        out = d.copy()
    return make(out, (a,), lambda g: (g * inside,))


def cast(a, dtype) -> Tensor:
    a = _t(a)
    source = a.dtype
    return make(a.data.astype(dtype), (a,), lambda g: (g.astype(source),))


# ---------------------------------------------------------------------------- matmul


def matmul(a, b) -> Tensor:
    """Matrix product with NumPy's rules: 1-D operands, and batched (…, n, k) @ (…, k, m)."""
    a, b = _binary_operands(a, b)
    xp = B.xp
    if a.ndim > 2 and b.ndim == 2:  # (…, n, k) @ (k, m): one GEMM over all rows (see linear)
        return linear(a, b)
    out = a.data @ b.data

    def backward(g):
        ad, bd = a.data, b.data
        a1, b1 = ad.ndim == 1, bd.ndim == 1
        A = ad[None, :] if a1 else ad
        Bm = bd[:, None] if b1 else bd
        G = g
        if a1 and b1:
            G = g.reshape(1, 1)
        elif a1:
            G = xp.expand_dims(g, -2)
        elif b1:
            G = xp.expand_dims(g, -1)
        ga = gb = None
        if a.requires_grad:
            ga = G @ xp.swapaxes(Bm, -1, -2)
            ga = unbroadcast(ga, A.shape).reshape(ad.shape)
        if b.requires_grad:
            gb = xp.swapaxes(A, -1, -2) @ G
            gb = unbroadcast(gb, Bm.shape).reshape(bd.shape)
        return ga, gb

    return make(out, (a, b), backward)


def linear(x, kernel, bias=None, act=None) -> Tensor:
    """Fused ``x @ kernel + bias`` for (…, in) @ (in, out): one node instead of two.

    ``act``: None, or an activation fused into the node as an (add the bias and apply in place,
    gradient from the output) pair — ``nn.dense`` passes one of ``nn.FUSED_ACTIVATIONS``.
    When ``x`` is an embedding lookup ``table[ids]`` of a table with fewer rows than x has (see
    :func:`gathered_rows`), the table's rows are projected and gathered instead.
    """
    x, kernel = _binary_operands(x, kernel)
    bias = bias if bias is None or isinstance(bias, Tensor) else _constant_like(bias, kernel)
    if x._made_by is not None:
        out = _linear_of_rows(x, kernel, bias, act)
        if out is not None:
            return out
    xd = x.data
    # the rows as one (rows, in) matrix and one GEMM over them (NumPy's stacked matmul runs one per leading index,
    # 2.3x slower); when x is a strided view this is a copy, made once and kept for the kernel's gradient (memory
    # for speed: the backward made it again). A (batch, time, in) view of time-major rows (a recurrent layer's
    # outputs) is taken in its own row order, without a copy, and so is the output made: (time, batch, out) rows
    # (unless a bias varies along the batch or time axis: it is added in the output's own order).
    swapped = (xd.ndim == 3 and not xd.flags.c_contiguous and xd.swapaxes(0, 1).flags.c_contiguous
               and (bias is None or all(d == 1 for d in bias.shape[:-1])))
    rows_data = xd.swapaxes(0, 1) if swapped else xd
    x2 = xd if xd.ndim == 2 else rows_data.reshape(math.prod(xd.shape[:-1]), xd.shape[-1])  # (not −1: a width may be 0)
    out = parallel.matmul(x2, kernel.data)
    if xd.ndim != 2:
        out = out.reshape(rows_data.shape[:-1] + (kernel.shape[-1],))
    add = None  # the bias, when the activation adds it in its own pass
    if bias is not None:
        if bias.data.dtype != out.dtype:
            out = out + bias.data  # a wider bias widens the output, as NumPy's promotion does
        elif act is not None:
            add = bias.data
        else:
            out += bias.data
    if act is not None:
        act[0](out, add)
    rows_out = out  # in x2's row order
    if swapped:
        out = out.swapaxes(0, 1)

    def backward(g):
        if swapped:  # the gradient in x2's row order (the input's gradient is then seen as x is)
            g = g.swapaxes(0, 1)
        if act is not None:
            g = act[1](g, rows_out)
        g2 = g.reshape(x2.shape[0], g.shape[-1])
        gx = gk = None
        if x.requires_grad and swapped:
            # The outputs of a recurrent layer: its compiled backward reads this gradient next, in aligned vectors,
            # on the pool's threads. The two products run side by side, on one BLAS thread each, so that no
            # OpenBLAS worker is left spinning on a core that backward needs.
            rows = B.aligned_empty((x2.shape[0], kernel.shape[0]), B.xp.result_type(g2, kernel.data))

            def product(k):
                return parallel.matmul(g2, kernel.data.T, out=rows) if k == 0 else _kernel_grad(x2.T, g2, kernel)

            macs = x2.shape[0] * kernel.shape[0] * kernel.shape[1]  # of each product
            if kernel.requires_grad and macs >= parallel.BLAS_ONE_THREAD_MACS and parallel.threads() > 1:
                gx, gk = parallel.run(product, [0, 1])
            else:
                gx = parallel.matmul(g2, kernel.data.T, out=rows)
            gx = gx.reshape(rows_data.shape).swapaxes(0, 1)
        elif x.requires_grad:
            gx = parallel.matmul(g2, kernel.data.T).reshape(rows_data.shape)
        if kernel.requires_grad and gk is None:
            gk = _kernel_grad(x2.T, g2, kernel)
        if bias is None:
            return gx, gk
        gb = None
        if bias.requires_grad:  # (swapped: the bias is the same along batch and time, any order sums it)
            gb = unbroadcast(g2 if bias.shape == g2.shape[1:] else g, bias.shape)
        return gx, gk, gb

    return make(out, (x, kernel) if bias is None else (x, kernel, bias), backward)


def _linear_of_rows(x, kernel, bias, act):
    """:func:`linear` of an embedding lookup ``x`` = ``table[ids]`` by projecting the table's rows and
    gathering them (see :func:`gathered_rows`); None where that does not apply."""
    xd = x.data
    rows = math.prod(xd.shape[:-1])
    table, ids = gathered_rows(x, rows)
    plain_bias = bias is None or (bias.data.dtype == xd.dtype and bias.shape == kernel.shape[1:])
    if table is None or kernel.data.dtype != xd.dtype or kernel.ndim != 2 or not plain_bias:
        return None  # promotion, or a bias that broadcasts: the general path
    ids = ids.reshape(-1)
    out = project_rows(table.data, ids, kernel.data, None if bias is None else bias.data)
    if act is not None:
        act[0](out, None)
    out = out.reshape(xd.shape[:-1] + (kernel.shape[-1],))

    def backward(g):
        if act is not None:
            g = act[1](g, out)
        return rows_projection_grads(table, ids, g.reshape(rows, g.shape[-1]), kernel, bias)

    return make(out, (table, kernel) if bias is None else (table, kernel, bias), backward)


def _kernel_grad(xt, g2, kernel):
    """``xt @ g2``, a kernel's gradient, in the kernel's layout (column-major: Dense's large ones), for
    the optimizer's flat update."""
    kd = kernel.data
    if kd.flags.c_contiguous:
        return parallel.matmul(xt, g2)
    gk = B.xp.empty(kd.shape, dtype=B.xp.result_type(xt.dtype, g2.dtype), order="F")
    B.xp.matmul(xt, g2, out=gk)
    return gk


def gathered_rows(x: Tensor, rows: int):
    """``(table, ids)`` when a projection of ``x`` may project the table instead: ``x`` is ``table[ids]``,
    a lookup of the rows of a 2-D table of x's dtype (an embedding's output, made by :func:`take`), with
    fewer rows than the ``rows`` a projection of ``x`` would multiply; else ``(None, None)``.

    Also only while ``x`` stands for the lookup alone: recorded on the tape with the table as its one
    parent when it requires a gradient (not a lookup made under ``no_grad``, a released graph, or a
    lookup whose own gradient the caller asked for), and the table's array the one it looked up
    (set_weights may replace it). Changing either array in place in between breaks this, as it breaks
    any recorded backward.
    """
    tag = x._made_by
    if tag is None or tag[0] != "rows":
        return None, None
    _, table, ids, looked_up = tag
    if table.data is not looked_up or looked_up.dtype != x.data.dtype or table.shape[0] >= rows:
        return None, None
    if x.requires_grad:
        parents = x._parents
        if len(parents) != 1 or parents[0] is not table:
            return None, None
    elif table.requires_grad and is_grad_enabled():
        return None, None
    return table, ids


def projected_table(table, kernel, bias=None, out=None):
    """``table @ kernel + bias`` for arrays (into ``out`` when given): each row of an embedding table
    projected once."""
    projected = parallel.matmul(table, kernel, out=out)
    if bias is not None:
        projected += bias
    return projected


def project_rows(table, ids, kernel, bias=None):
    """``(table @ kernel + bias)[ids]`` for arrays: the table's rows projected once, then gathered
    (rows, out) for the flat ``ids`` (rows,)."""
    return B.xp.take(projected_table(table, kernel, bias), ids, axis=0)


def rows_projection_grads(table, ids, g, kernel, bias):
    """The gradients of :func:`project_rows`, ``(table @ kernel + bias)[ids]`` (rows, out), given its
    gradient ``g`` (rows, out): the gradients of the table, the kernel and (unless ``bias`` is None) the
    bias, None where not required. ``ids`` flat (rows,). Each table row's uses are summed first
    (:func:`_scatter_add_rows`), so the matmuls have the table's rows, not the lookup's."""
    per_row = _scatter_add_rows(table.shape[0], ids, g)
    d_table = parallel.matmul(per_row, kernel.data.T) if table.requires_grad else None
    d_kernel = _kernel_grad(table.data.T, per_row, kernel) if kernel.requires_grad else None
    if bias is None:
        return d_table, d_kernel
    return d_table, d_kernel, (per_row.sum(axis=0) if bias.requires_grad else None)


# ------------------------------------------------------------------------ reductions


def sum(a, axis=None, keepdims=False) -> Tensor:
    a = _t(a)
    shape = a.shape
    xp = B.xp
    return make(
        a.data.sum(axis=axis, keepdims=keepdims),
        (a,),
        lambda g: (xp.broadcast_to(_expand_reduced(g, shape, axis, keepdims), shape),),
    )


def mean(a, axis=None, keepdims=False) -> Tensor:
    a = _t(a)
    shape = a.shape
    count = math.prod(shape) // builtins.max(1, math.prod(_reduced_shape(shape, axis)))
    xp = B.xp
    return make(
        a.data.mean(axis=axis, keepdims=keepdims),
        (a,),
        lambda g: (xp.broadcast_to(_expand_reduced(g, shape, axis, keepdims) / count, shape),),
    )


def _reduced_shape(shape, axis):
    axes = _normalize_axis(axis, len(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _extreme(a, axis, keepdims, reducer):
    a = _t(a)
    shape = a.shape
    out = reducer(a.data, axis=axis, keepdims=True)

    def backward(g):
        mask = (a.data == out).astype(g.dtype)
        mask /= mask.sum(axis=axis, keepdims=True)
        return (_expand_reduced(g, shape, axis, keepdims) * mask,)

    return make(out if keepdims else out.reshape(_reduced_shape(shape, axis)), (a,), backward)


def max(a, axis=None, keepdims=False) -> Tensor:
    """Maximum over ``axis``; tied maxima share the gradient equally."""
    return _extreme(a, axis, keepdims, B.xp.max)


def min(a, axis=None, keepdims=False) -> Tensor:
    """Minimum over ``axis``; tied minima share the gradient equally."""
    return _extreme(a, axis, keepdims, B.xp.min)


def var(a, axis=None, keepdims=False) -> Tensor:
    """Population variance (ddof=0) over ``axis``; d var/dx = 2(x − mean)/N."""
    a = _t(a)
    shape = a.shape
    centered = a.data - a.data.mean(axis=axis, keepdims=True)
    out = (centered * centered).mean(axis=axis, keepdims=keepdims)
    count = a.data.size // builtins.max(1, out.size)
    return make(out, (a,), lambda g: (_expand_reduced(g, shape, axis, keepdims) * (2.0 / count) * centered,))


def logsumexp(a, axis=-1, keepdims=False) -> Tensor:
    """log Σ exp(a) over ``axis``, stable (shifted by the maximum); gradient softmax(a)."""
    a = _t(a)
    xp = B.xp
    shift = a.data.max(axis=axis, keepdims=True)
    shift = xp.where(xp.isfinite(shift), shift, xp.zeros((), shift.dtype))  # all -inf gives -inf, not nan
    e = xp.exp(a.data - shift)
    s = e.sum(axis=axis, keepdims=True)
    out = xp.log(s) + shift
    shape = a.shape

    def backward(g):
        return (_expand_reduced(g, shape, axis, keepdims) * (e / s),)

    return make(out if keepdims else xp.squeeze(out, axis=axis), (a,), backward)


# ---------------------------------------------------------------------------- shapes


def reshape(a, shape) -> Tensor:
    a = _t(a)
    source = a.shape
    return make(a.data.reshape(shape), (a,), lambda g: (g.reshape(source),))


def transpose(a, axes=None) -> Tensor:
    a = _t(a)
    inverse = None
    if axes is not None:
        axes = tuple(int(ax) % a.ndim for ax in axes)  # negative axes must be normalized to invert
        inverse = tuple(sorted(range(len(axes)), key=axes.__getitem__))
    return make(a.data.transpose(axes), (a,), lambda g: (g.transpose(inverse),))


def swapaxes(a, axis1, axis2) -> Tensor:
    a = _t(a)
    return make(B.xp.swapaxes(a.data, axis1, axis2), (a,), lambda g: (B.xp.swapaxes(g, axis1, axis2),))


def expand_dims(a, axis) -> Tensor:
    a = _t(a)
    source = a.shape
    return make(B.xp.expand_dims(a.data, axis), (a,), lambda g: (g.reshape(source),))


def squeeze(a, axis=None) -> Tensor:
    a = _t(a)
    source = a.shape
    return make(B.xp.squeeze(a.data, axis=axis), (a,), lambda g: (g.reshape(source),))


def broadcast_to(a, shape) -> Tensor:
    a = _t(a)
    source = a.shape
    return make(B.xp.broadcast_to(a.data, shape), (a,), lambda g: (unbroadcast(g, source),))


def _is_advanced(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return builtins.any(isinstance(p, (list, Tensor)) or hasattr(p, "ndim") and p.ndim > 0 for p in parts)


def getitem(a, index) -> Tensor:
    """``a[index]`` for basic (slices, ints, None, Ellipsis) and integer/boolean-array indexing.

    Backward scatters the gradient back; repeated integer indices accumulate.
    """
    a = _t(a)
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    xp = B.xp
    advanced = _is_advanced(index)

    def backward(g):
        if advanced:
            return (_scatter_add_index(a.shape, index, g),)
        grad = xp.zeros(a.shape, dtype=g.dtype)
        grad[index] = g
        return (grad,)

    return make(a.data[index], (a,), backward)


def _scatter_add_rows(rows: int, idx, g):
    """``out[idx[k]] += g[k]`` for every k, ``out`` (rows, …) zeros elsewhere: the backward of a gather
    along the first axis, where ids repeat (an embedding lookup).

    ``idx`` flat (n,) integers in [0, rows) (negative ones wrap); ``g`` (n, …). With the compiled path on,
    one in-order pass (``kernels.index.scatter_add_rows``). Its NumPy twin sorts the ids and sums each
    run of equal ids: with one ``add.reduceat`` over the sorted rows, or, for wide rows and few runs, one
    sum per run (reduceat walks each column down the rows: 29 ms for 4,096 rows of 1,024 into 65 ids,
    against 0.7 ms run by run). ``np.add.at`` is several times slower than either (1.8 ms against 0.5
    ms for 4,096 ids into a (65, 64) table). Other backends (CuPy's ``add.at`` is an atomic scatter)
    use ``add.at``. The paths sum in different orders, so they agree to rounding.
    """
    xp = B.xp
    out = xp.zeros((rows,) + tuple(g.shape[1:]), dtype=g.dtype)
    if idx.size == 0 or out.size == 0:
        return out
    idx = xp.where(idx < 0, idx + rows, idx) if idx.dtype.kind == "i" else idx
    if xp.__name__ != "numpy":
        xp.add.at(out, idx, g)
        return out
    width = out.size // rows
    flat = g.reshape(idx.size, width)
    compiled = jit.kernels("index", flat)
    if compiled is not None:
        if not compiled.scatter_add_rows(xp.ascontiguousarray(idx, dtype=xp.intp), flat, out.reshape(rows, width)):
            raise IndexError(f"a gathered row's id is out of range for {rows} rows")
        return out
    order = xp.argsort(idx, kind="stable")  # stable: each row sums its terms in their original order
    ids = idx[order]
    starts = xp.flatnonzero(xp.concatenate((xp.ones(1, dtype=bool), ids[1:] != ids[:-1])))
    if width >= WIDE_ROWS and starts.size * WIDE_ROWS * 8 < flat.size:
        ends = starts[1:].tolist() + [ids.size]
        for start, end, row in zip(starts.tolist(), ends, ids[starts].tolist()):
            out[row] = g[order[start:end]].sum(axis=0)
        return out
    out[ids[starts]] = xp.add.reduceat(g[order], starts, axis=0)
    return out


WIDE_ROWS = 128
"""Rows at least this wide are summed run by run in :func:`_scatter_add_rows`'s NumPy path when there
are few runs (fewer than one per ``8·WIDE_ROWS`` summed elements): ``add.reduceat`` over the rows slows
down with their width (4,096 rows into 65 ids: 0.24 ms at width 64, 1.3 ms at 128, 29 ms at 1,024),
while a sum per run costs a few microseconds of call plus its rows."""


def _scatter_add_index(shape, index, g):
    """The gradient of ``a[index]`` (``a`` of ``shape``) for an advanced ``index``: ``g`` scattered back,
    repeated positions accumulating. A single integer array on the first axis takes the sorted
    :func:`_scatter_add_rows`; other indexes ``add.at``."""
    xp = B.xp
    parts = index if isinstance(index, tuple) else (index,)
    if len(parts) == 1 and hasattr(parts[0], "dtype") and parts[0].dtype.kind in "iu":
        idx = parts[0]
        rest = tuple(shape[1:])
        flat = g.reshape((idx.size,) + rest)
        return _scatter_add_rows(shape[0], idx.reshape(-1), flat)
    grad = xp.zeros(shape, dtype=g.dtype)
    xp.add.at(grad, index, g)
    return grad


def take(a, indices, axis=0) -> Tensor:
    """Gather along ``axis`` (an embedding lookup); backward accumulates repeated indices."""
    a = _t(a)
    idx = _as_data(indices)
    if idx.dtype.kind not in "iu":  # float ids (Keras feeds embeddings float tensors) become integers
        idx = idx.astype("int64")
    xp = B.xp
    axis = axis % a.ndim

    def backward(g):
        # move the gathered axis first: rows of ``a`` along ``axis`` receive the sums of their ids' gradients
        moved = xp.moveaxis(g, list(range(axis, axis + idx.ndim)), list(range(idx.ndim)))
        rest = moved.shape[idx.ndim:]
        summed = _scatter_add_rows(a.shape[axis], idx.reshape(-1), moved.reshape((idx.size,) + rest))
        return (xp.moveaxis(summed, 0, axis),)

    out = make(xp.take(a.data, idx, axis=axis), (a,), backward)
    if axis == 0 and a.ndim == 2:
        out._made_by = ("rows", a, idx, a.data)
    return out


def concatenate(tensors, axis=0) -> Tensor:
    tensors = _operand_list(list(tensors))
    xp = B.xp
    out = xp.concatenate([t.data for t in tensors], axis=axis)
    bounds = []
    offset = 0
    for t in tensors:
        n = t.shape[axis]
        bounds.append((offset, offset + n))
        offset += n

    def backward(g):
        moved = xp.moveaxis(g, axis, 0)
        return tuple(xp.moveaxis(moved[lo:hi], 0, axis) for lo, hi in bounds)

    return make(out, tensors, backward)


def stack(tensors, axis=0) -> Tensor:
    tensors = _operand_list(list(tensors))
    xp = B.xp
    out = xp.stack([t.data for t in tensors], axis=axis)

    def backward(g):
        moved = xp.moveaxis(g, axis, 0)
        return tuple(moved[i] for i in range(len(tensors)))

    return make(out, tensors, backward)


def split(a, indices_or_sections, axis=0) -> list:
    """Split along ``axis`` into Tensors (each a slice of ``a``)."""
    a = _t(a)
    xp = B.xp
    pieces = xp.split(xp.arange(a.shape[axis]), indices_or_sections)
    out = []
    for piece in pieces:
        index = [slice(None)] * a.ndim
        index[axis] = slice(int(piece[0]), int(piece[-1]) + 1) if len(piece) else slice(0, 0)
        out.append(getitem(a, tuple(index)))
    return out


def pad(a, pad_width, constant_values=0.0) -> Tensor:
    """Constant padding like ``numpy.pad``; backward slices the padding off."""
    a = _t(a)
    xp = B.xp
    width = _pad_widths(pad_width, a.ndim)
    out = xp.pad(a.data, width, mode="constant", constant_values=constant_values)
    inner = tuple(slice(lo, lo + n) for (lo, _), n in zip(width, a.shape))
    return make(out, (a,), lambda g: (g[inner],))


def _pad_widths(pad_width, ndim):
    """``numpy.pad``'s ``pad_width`` forms (n, (before, after), or one pair per axis) as one pair per axis."""
    def pair(p):
        if hasattr(p, "__len__"):
            if len(p) == 1:
                return (int(p[0]), int(p[0]))
            if len(p) == 2:
                return (int(p[0]), int(p[1]))
            raise ValueError(f"pad: each pad width must be n or (before, after), got {p!r}")
        return (int(p), int(p))

    if not hasattr(pad_width, "__len__"):
        return [pair(pad_width)] * ndim
    widths = list(pad_width)
    if widths and not builtins.any(hasattr(p, "__len__") for p in widths):
        return [pair(widths)] * ndim  # (before, after) or (n,) for every axis
    if len(widths) == 1:
        return [pair(widths[0])] * ndim
    if len(widths) != ndim:
        raise ValueError(f"pad: expected {ndim} (before, after) pairs for a {ndim}-D input, got {pad_width!r}")
    return [pair(p) for p in widths]


def dropout(a, rate: float, generator=None, noise_shape=None) -> Tensor:
    """Inverted dropout, one node: each entry of ``a`` zeroed with probability ``rate``, the others
    scaled by 1/(1 − rate), so that the expected output is ``a``.

    ``generator``: the host random generator the mask is drawn from (the global one when None);
    ``noise_shape``: the mask's shape, broadcast against ``a`` (size-1 axes share one draw: spatial
    dropout), ``a``'s own shape when None. The mask is :func:`~shenjing.backend.random_bits` — 16
    bits per entry, kept where at or above ``keep_threshold(rate)`` — and the backward keeps those
    bits (2 bytes per entry) instead of a float mask. With the compiled path on and a full-size mask,
    one kernel pass applies it forward and backward (``kernels.elementwise.dropout``); its NumPy twin
    builds the mask ``keep · scale`` and multiplies.
    """
    a = _t(a)
    if not 0 <= rate < 1:
        raise ValueError(f"dropout: rate must be in [0, 1), got {rate!r}")
    shape = tuple(a.shape) if noise_shape is None else tuple(int(s) for s in noise_shape)
    if len(shape) != a.ndim or any(s not in (1, d) for s, d in zip(shape, a.shape)):
        raise ValueError(f"dropout: noise_shape {shape} does not broadcast to the input's shape {tuple(a.shape)} "
                         "(each axis must be 1 or the input's size)")
    bits = B.random_bits(generator if generator is not None else B.rng(), shape)
    threshold = B.keep_threshold(rate)
    dtype = a.dtype if a.dtype.kind == "f" else B.xp.dtype(B.floatx())
    data = a.data.astype(dtype, copy=False)
    scale = dtype.type(1.0 / (1.0 - rate))
    kernels = jit.kernels("elementwise", data) if shape == tuple(a.shape) else None
    if kernels is not None:
        out = B.xp.empty_like(data)
        kernels.dropout(data, bits, threshold, scale, out)

        def backward(g):
            g = B.xp.ascontiguousarray(g, dtype=dtype)
            res = B.xp.empty_like(g)
            kernels.dropout(g, bits, threshold, scale, res)
            return (res,)

        return make(out, (a,), backward)
    keep = B.asarray(bits) >= threshold
    mask = keep * B.xp.asarray(scale, dtype=dtype)
    return make(data * mask, (a,), lambda g: (g * mask,))


dropout.draws_random = True  # a replay runs it even when its output is not used (``replay.Plan``)


def dropout_mask_apply(a, mask) -> Tensor:
    """``a * mask`` for a constant mask array (dropout, masking): one node, no mask gradient.

    The mask takes the input's dtype (a float64 or boolean mask keeps float32 data float32).
    """
    a = _t(a)
    mask = _as_data(mask)
    if a.dtype.kind == "f" and mask.dtype != a.dtype:
        mask = mask.astype(a.dtype)
    return make(a.data * mask, (a,), lambda g: (g * mask,))


# every op is visible to a recording; these helpers compute on arrays
record_module_ops(globals(), {"unbroadcast", "gathered_rows", "projected_table", "project_rows",
                              "rows_projection_grads"})
