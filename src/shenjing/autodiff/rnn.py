"""Fused recurrent primitives: a whole sequence of SimpleRNN, LSTM or GRU steps as ONE tape node,
with back-propagation through time written out by hand.

The input projection of every gate for the whole sequence is one matmul (``x_proj`` = x @ kernel +
bias, shape (batch, time, gates·units)): done by the layer for SimpleRNN and GRU, inside the node for
the LSTM layer (:func:`lstm_with_input`: time-major, the bias a row of the weight matrix, so the
backward gives the kernel's and the bias's gradients in one matmul). The primitive runs the
recurrence, one fused matmul ``h @ recurrent_kernel`` (all gates) per time step, into buffers of
shape (time, batch, …) allocated once per call. The backward walks the steps in reverse and
finishes with one big matmul for the recurrent kernel's gradient (Σ_t h_{t−1}ᵀ · dz_t).

The LSTM with sigmoid/tanh (Keras's default) takes a fast path: σ(z) = ½ + ½·tanh(z/2), so with the
sigmoid columns of the weights halved one tanh covers the four gates of a step, followed by two
whole-row passes; every step works in place on full (batch, 4·units) rows of preallocated buffers,
and the backward computes the gate derivatives from the stored gates (σ' = σ(1 − σ), tanh' = 1 − g²).
With the compiled path on (:mod:`shenjing.backend.jit`), the elementwise gate math of a step after
its tanh (five NumPy ufuncs), and all of it in the backward (fifteen, and the addition of the step's
output gradient), is one pass of a numba kernel (:mod:`shenjing.backend.kernels.rnn`), and so is the
gathering of an embedding's projected rows into a step's gates; the kernels do the same operations in
the same order, so both paths give the same numbers. (The tanh itself stays with NumPy, whose SIMD
tanh is far faster.)

For the LSTM layer (:func:`lstm_with_input`: sigmoid/tanh, float32, a multiple of 16 units, no mask
and no recurrent dropout) on a CPU with AVX-512, the compiled path goes further (:func:`_fused_forward`;
``lstm`` on a given projection keeps the kernels above): the whole recurrence, forward
and backward, runs as two register-blocked kernels (``backend.kernels.microkernel.lstm_forward`` and
``lstm_backward``) on all the pool's threads at once, each thread owning a share of the units (their
four gates' columns of the recurrent kernel stay in its core's cache) and the threads meeting at a
barrier after every step. The forward computes a block of h·R and finishes its gates in registers (its
own SIMD tanh, within 6 ulp of the exact one); the backward computes each thread's units' gate
gradients and their share of the next h gradient. The results are the step-by-step path's within
float32 rounding (the tanh, and the order of the sums). Char-LSTM training (W5, 2 threads): 1,260 →
1,500 sequences/s. A pass of the kernels is not cut short by an interrupt (Ctrl-C): it is taken when
the pass ends (one forward or backward over the sequence).

Conventions (Keras's):

- gate order: LSTM i, f, c, o; GRU z, r, h; SimpleRNN a single block.
- LSTM: i = σ(x_i + h·R_i), f = σ(x_f + h·R_f), g = act(x_c + h·R_c), o = σ(x_o + h·R_o),
  c' = f·c + i·g, h' = o·act(c').
- GRU, ``reset_after=True`` (Keras 2/3's default, cuDNN's and torch's form; separate recurrent bias
  b_r): z = σ(x_z + (h·R + b_r)_z), r = σ(x_r + (h·R + b_r)_r), ĥ = act(x_h + r ⊙ (h·R + b_r)_h);
  ``reset_after=False`` (the original): ĥ = act(x_h + (r ⊙ h)·R_h) and no recurrent bias.
  h' = z·h + (1 − z)·ĥ.
- SimpleRNN: h' = act(x + h·R).
- ``mask`` (batch, time), True = a real step: where False, h (and c) carry over unchanged and no
  gradient flows through that step's update. The output at a masked step is the previous output
  (zeros before the first real step) as Keras's ``K.rnn``; with ``zero_output_for_mask`` it is zero
  (what ``Bidirectional`` asks for).
- ``go_backwards``: the steps run from the last to the first; outputs are returned in processing
  order (reversed), as Keras does.
- ``recurrent_dropout_mask`` (batch, units), constant over time: the state entering the recurrent
  matmuls is h ⊙ mask (the carried state itself, and GRU's z-interpolation, use h).

Each primitive returns ``(outputs, *final_states)``: outputs (batch, time, units) and each final
state (batch, units), all views of the one node (a packed (batch, time + states, units) array). With
``return_states=False`` it returns ``(outputs,)``, the node itself: the (batch, time, units) outputs
seen through the time-major states (no copy; a time-major copy where a mask zeroes outputs), which a
following Dense reads as one (time·batch, units) matrix without a copy (``ops.linear``), and whose
gradient reaches the backward as it comes (no slicing node scattering it into a zero-filled packed
array).

Activations are taken from a small table of (in-place forward, derivative from the output) pairs:
tanh, sigmoid, hard_sigmoid (Keras 3's clip(x/6 + 1/2, 0, 1), as :mod:`shenjing.activations`), relu
and linear. :func:`fusable` tells whether an activation is in it (layers fall back to a step-by-step
cell otherwise).
"""

from __future__ import annotations

from .. import backend as B
from ..backend import jit, parallel
from . import ops
from .tensor import Tensor, _as_data, make

# ------------------------------------------------------------------------------ activations


def _tanh(a, out=None):
    B.xp.tanh(a, out=a if out is None else out)


def _sigmoid(a, out=None):
    # σ(x) = (1 + tanh(x/2)) / 2: one transcendental pass, stable for any x
    xp = B.xp
    out = a if out is None else out
    xp.multiply(a, 0.5, out=out)
    xp.tanh(out, out=out)
    xp.multiply(out, 0.5, out=out)
    xp.add(out, 0.5, out=out)


def _hard_sigmoid(a, out=None):
    xp = B.xp
    out = a if out is None else out
    xp.multiply(a, 1.0 / 6.0, out=out)
    xp.add(out, 0.5, out=out)
    xp.clip(out, 0.0, 1.0, out=out)


def _relu(a, out=None):
    B.xp.maximum(a, 0, out=a if out is None else out)


def _linear(a, out=None):
    if out is not None:
        out[...] = a


# (forward(x, out=None): in place, or into out; derivative of f at x written with y = f(x))
ACTIVATIONS = {
    "tanh": (_tanh, lambda y: 1 - y * y),
    "sigmoid": (_sigmoid, lambda y: y * (1 - y)),
    "hard_sigmoid": (_hard_sigmoid, lambda y: ((y > 0) & (y < 1)).astype(y.dtype) / 6),
    "relu": (_relu, lambda y: y > 0),
    "linear": (_linear, lambda y: 1.0),
}


def fusable(activation) -> str | None:
    """The table name of ``activation`` (a name, or a function of :mod:`shenjing.activations`), or None."""
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        return activation if activation in ACTIVATIONS else None
    from .. import activations as A

    for name in ACTIVATIONS:
        if A.ACTIVATIONS.lookup(name) is activation:
            return name
    return None


def _activation(activation, argument: str):
    name = fusable(activation)
    if name is None:
        raise ValueError(f"{argument}: the fused recurrent primitives support the activations "
                         f"{sorted(ACTIVATIONS)}, got {activation!r}")
    return ACTIVATIONS[name]


# ---------------------------------------------------------------------------------- helpers


def _tensor(x, dtype):
    if x is None:
        return None
    if isinstance(x, Tensor):
        return x
    return Tensor(_as_data(x, dtype))


def _prepare(x_proj, states, recurrent_kernel, gates, mask, name):
    """Tensors of the inputs (None states become zeros), their shapes checked; the mask as a (batch, time)
    boolean array, or None."""
    x_proj = x_proj if isinstance(x_proj, Tensor) else Tensor(x_proj)
    if x_proj.ndim != 3:
        raise ValueError(f"{name}: x_proj must be (batch, time, {gates}·units), got shape {x_proj.shape}")
    n, t, width = x_proj.shape
    if width % gates:
        raise ValueError(f"{name}: the last axis of x_proj ({width}) must be {gates}·units")
    out_states, recurrent_kernel, mask, units = _prepare_states(states, recurrent_kernel, n, t, width, gates, mask,
                                                                x_proj.dtype, name)
    return x_proj, out_states, recurrent_kernel, mask, n, t, units


def _prepare_states(states, recurrent_kernel, n, t, width, gates, mask, dtype, name):
    """(state Tensors (None -> zeros), the recurrent kernel Tensor, the mask or None, units), shapes checked."""
    units = width // gates
    xp = B.xp
    out_states = []
    for label, s in states:
        if s is None:
            s = Tensor(xp.zeros((n, units), dtype=dtype))
        else:
            s = _tensor(s, dtype)
        if s.shape != (n, units):
            raise ValueError(f"{name}: {label} must have shape {(n, units)}, got {s.shape}")
        out_states.append(s)
    recurrent_kernel = _tensor(recurrent_kernel, dtype)
    if recurrent_kernel.shape != (units, width):
        raise ValueError(f"{name}: recurrent_kernel must have shape {(units, width)}, got {recurrent_kernel.shape}")
    if mask is not None:
        mask = _as_data(mask).astype(bool)
        if mask.shape != (n, t):
            raise ValueError(f"{name}: mask must have shape (batch, time) = {(n, t)}, got {mask.shape}")
    return out_states, recurrent_kernel, mask, units


class _Plan:
    """Per-call step bookkeeping shared by the three primitives: processing order, masks, outputs."""

    def __init__(self, n, t, units, dtype, mask, go_backwards, zero_output_for_mask, recurrent_dropout_mask,
                 with_states=True):
        xp = B.xp
        self.t = t
        self.with_states = bool(with_states)  # the final states packed after the outputs
        self.go_backwards = bool(go_backwards)
        self.index = [t - 1 - s if go_backwards else s for s in range(t)]  # input time of processing step s
        self.keep = self.drop = self.keep_f = self.out_scale = None
        if mask is not None and not mask.all():
            proc = mask[:, ::-1] if go_backwards else mask
            proc = xp.ascontiguousarray(proc.T)[:, :, None]  # (time, batch, 1), processing order
            self.keep = proc
            self.drop = ~proc
            self.keep_f = proc.astype(dtype)
            shown = proc if zero_output_for_mask else xp.cumsum(proc, axis=0) > 0  # a real step seen yet
            if not shown.all():
                self.out_scale = shown.astype(dtype)
        self.rdm = None
        if recurrent_dropout_mask is not None:
            rdm = _as_data(recurrent_dropout_mask, dtype)
            if rdm.shape != (n, units):
                raise ValueError(f"recurrent_dropout_mask must have shape {(n, units)}, got {rdm.shape}")
            self.rdm = rdm

    def dropped(self, h):
        """The state entering the recurrent matmul (recurrent dropout applied)."""
        return h if self.rdm is None else h * self.rdm

    def carry(self, new, old, s):
        """Masked steps keep the old state (in place on ``new``)."""
        if self.keep is not None:
            B.xp.copyto(new, old, where=self.drop[s])

    def split_grad(self, g, s):
        """(gradient reaching the step's update, gradient carried straight to the previous state)."""
        if self.keep is None:
            return g, None
        return g * self.keep_f[s], g * (1 - self.keep_f[s])

    def pack(self, hs, finals):
        """The packed output (batch, time + len(finals), units): outputs in processing order, then states.
        Without ``with_states``: the outputs alone, (batch, time, units) seen through the time-major ``hs``
        (no copy; a time-major copy where a mask zeroes outputs)."""
        xp = B.xp
        t = self.t
        n, units = hs.shape[1], hs.shape[2]
        if not self.with_states:
            seq = hs[1:] if self.out_scale is None else hs[1:] * self.out_scale
            return xp.swapaxes(seq, 0, 1)
        packed = xp.empty((n, t + len(finals), units), dtype=hs.dtype)
        seq = hs[1:]
        if self.out_scale is not None:
            seq = seq * self.out_scale
        packed[:, :t] = xp.swapaxes(seq, 0, 1)
        for k, f in enumerate(finals):
            packed[:, t + k] = f
        return packed

    def unpack_grad(self, g, n_states):
        """(per-step output gradients (time, batch, units) in processing order, final-state gradients)."""
        xp = B.xp
        t = self.t
        g_out = xp.swapaxes(g[:, :t], 0, 1)
        if self.out_scale is not None:
            g_out = g_out * self.out_scale
        if not self.with_states:
            return g_out, [xp.zeros((g.shape[0], g.shape[2]), dtype=g.dtype) for _ in range(n_states)]
        return g_out, [g[:, t + k].copy() for k in range(n_states)]

    def previous_states(self, hs, dtype):
        """h_{t−1} (as it entered the recurrent matmul) of every step, in input-time order, as (time·batch, units)."""
        xp = B.xp
        prev = hs[:-1]
        if self.go_backwards:
            prev = prev[::-1]
        if self.rdm is not None:
            prev = prev * self.rdm
        return xp.ascontiguousarray(prev).reshape(-1, hs.shape[-1])

    def x_grad(self, dx):
        return B.xp.swapaxes(dx, 0, 1)


def _unpack(node, t, n_states, plan):
    if not plan.with_states:
        return (node,)
    outputs = ops.getitem(node, (slice(None), slice(0, t)))
    finals = [ops.getitem(node, (slice(None), t + k)) for k in range(n_states)]
    return (outputs, *finals)


# --------------------------------------------------------------------------------- SimpleRNN


def simple_rnn(x_proj, h0, recurrent_kernel, activation="tanh", mask=None, go_backwards=False,
               recurrent_dropout_mask=None, zero_output_for_mask=False, return_states=True):
    """h_t = act(x_proj_t + h_{t−1} @ recurrent_kernel) over the whole sequence, one tape node.

    ``x_proj`` (batch, time, units); ``h0`` (batch, units) or None (zeros); ``recurrent_kernel``
    (units, units). Returns ``(outputs (batch, time, units), h_final (batch, units))`` (``(outputs,)`` without
    ``return_states``: see the module's docstring).
    """
    xp = B.xp
    x_proj, (h0,), R, mask, n, t, u = _prepare(x_proj, [("h0", h0)], recurrent_kernel, 1, mask, "simple_rnn")
    act, dact = _activation(activation, "simple_rnn activation")
    dtype = x_proj.dtype
    plan = _Plan(n, t, u, dtype, mask, go_backwards, zero_output_for_mask, recurrent_dropout_mask,
                 return_states)
    xT = xp.swapaxes(x_proj.data, 0, 1)
    Rd = R.data
    A = xp.empty((t, n, u), dtype=dtype)  # activated h_new per input time
    H = xp.empty((t + 1, n, u), dtype=dtype)  # carried states, processing order
    H[0] = h0.data
    for s in range(t):
        ix = plan.index[s]
        a = A[ix]
        xp.matmul(plan.dropped(H[s]), Rd, out=a)
        a += xT[ix]
        act(a)
        H[s + 1] = a
        plan.carry(H[s + 1], H[s], s)

    def backward(g):
        g_out, (gh,) = plan.unpack_grad(g, 1)
        dA = xp.empty((t, n, u), dtype=dtype)
        Rt = xp.ascontiguousarray(Rd.T)  # a C-ordered operand: the per-step matmul runs faster
        for s in reversed(range(t)):
            ix = plan.index[s]
            gh += g_out[s]
            g_new, g_skip = plan.split_grad(gh, s)
            d = dA[ix]
            xp.multiply(g_new, dact(A[ix]), out=d)
            gh = d @ Rt
            if plan.rdm is not None:
                gh *= plan.rdm
            if g_skip is not None:
                gh += g_skip
        dR = plan.previous_states(H, dtype).T @ dA.reshape(-1, u)
        return plan.x_grad(dA), gh, dR

    node = make(plan.pack(H, [H[t]]), (x_proj, h0, R), backward)
    return _unpack(node, t, 1, plan)


# -------------------------------------------------------------------------------------- LSTM


def lstm(x_proj, h0, c0, recurrent_kernel, recurrent_activation="sigmoid", activation="tanh", mask=None,
         go_backwards=False, recurrent_dropout_mask=None, zero_output_for_mask=False, return_states=True):
    """The LSTM recurrence (gates i, f, c, o) over the whole sequence, one tape node.

    ``x_proj`` (batch, time, 4·units) = x @ kernel + bias; ``h0``, ``c0`` (batch, units) or None;
    ``recurrent_kernel`` (units, 4·units). Returns ``(outputs, h_final, c_final)`` (``(outputs,)`` without
    ``return_states``).
    """
    xp = B.xp
    x_proj, (h0, c0), R, mask, n, t, u = _prepare(x_proj, [("h0", h0), ("c0", c0)], recurrent_kernel, 4, mask,
                                                  "lstm")
    acts = (_activation(recurrent_activation, "lstm recurrent_activation"), _activation(activation, "lstm activation"))
    plan = _Plan(n, t, u, x_proj.dtype, mask, go_backwards, zero_output_for_mask, recurrent_dropout_mask,
                 return_states)
    packed, core_backward = _lstm_core(xp.swapaxes(x_proj.data, 0, 1), False, h0.data, c0.data, R.data, acts, plan)

    def backward(g):
        dz, gh, gc, dR = core_backward(g)
        return plan.x_grad(dz), gh, gc, dR

    node = make(packed, (x_proj, h0, c0, R), backward)
    return _unpack(node, t, 2, plan)


def lstm_with_input(x, kernel, bias, h0, c0, recurrent_kernel, recurrent_activation="sigmoid", activation="tanh",
                    mask=None, go_backwards=False, recurrent_dropout_mask=None, zero_output_for_mask=False,
                    return_states=True):
    """:func:`lstm` with the input projection inside the node: ``x`` (batch, time, features),
    ``kernel`` (features, 4·units), ``bias`` (4·units,) or None; the same as
    ``lstm(x @ kernel + bias, h0, c0, recurrent_kernel, …)``, one tape node.

    The projection is one matmul over the whole sequence (time-major, the bias folded in as a column of ones), and
    the backward gives the kernel's and the bias's gradients in one matmul and the input's in another. When ``x`` is
    an embedding lookup ``table[ids]`` (``ops.take``'s output) of a table with fewer rows than the sequence has
    steps (:func:`ops.gathered_rows`), the table's rows are projected instead and the sequence gathers its
    projections (the same sums, grouped differently), and the backward gives the table's, the kernel's and the
    bias's gradients from each table row's summed uses (:func:`ops.rows_projection_grads`; char-LSTM, 65 ids into
    4,096 steps: the two matmuls of 4,096 rows become ones of 65, a training step 61 → 54 ms). Returns ``(outputs,
    h_final, c_final)`` (``(outputs,)`` without ``return_states``).
    """
    xp = B.xp
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.ndim != 3:
        raise ValueError(f"lstm_with_input: x must be (batch, time, features), got shape {x.shape}")
    dtype = x.dtype
    kernel = _tensor(kernel, dtype)
    n, t, features = x.shape
    if kernel.ndim != 2 or kernel.shape[0] != features or kernel.shape[1] % 4:
        raise ValueError(f"lstm_with_input: kernel must have shape ({features}, 4·units), got {kernel.shape}")
    width = kernel.shape[1]
    bias = _tensor(bias, dtype)
    if bias is not None and bias.shape != (width,):
        raise ValueError(f"lstm_with_input: bias must have shape {(width,)}, got {bias.shape}")
    (h0, c0), R, mask, u = _prepare_states([("h0", h0), ("c0", c0)], recurrent_kernel, n, t, width, 4, mask, dtype,
                                           "lstm_with_input")
    acts = (_activation(recurrent_activation, "lstm recurrent_activation"), _activation(activation, "lstm activation"))
    plan = _Plan(n, t, u, dtype, mask, go_backwards, zero_output_for_mask, recurrent_dropout_mask,
                 return_states)
    fast = _is_fast(acts)
    # the weight matrix with the bias as its last row
    cols = features + (bias is not None)
    W = xp.empty((cols, width), dtype=dtype)
    W[:features] = kernel.data
    if bias is not None:
        W[features] = bias.data
    if fast:
        W *= _lstm_vectors(u, dtype)[0]
    table, ids = ops.gathered_rows(x, t * n)
    rows = None
    if table is not None:  # project the table's rows, then gather them in time-major order
        ids = xp.ascontiguousarray(ids.T, dtype=xp.intp)  # (unsigned ids would widen to floats in a kernel)
        projected = ops.projected_table(table.data, W[:features], None if bias is None else W[features],
                                        out=B.aligned_empty((table.shape[0], width), xp.result_type(table.data, W)))
        if fast and jit.kernels("rnn", projected) is not None:  # gathered step by step, into the gates' rows
            P, rows = None, (projected, ids)
        else:
            P = xp.take(projected, ids.reshape(-1), axis=0).reshape(t, n, width)
        ids = ids.reshape(-1)
    else:  # time-major inputs with a column of ones
        X = xp.empty((t, n, cols), dtype=dtype)
        X[:, :, :features] = xp.swapaxes(x.data, 0, 1)
        if bias is not None:
            X[:, :, features] = 1
        Xf = X.reshape(t * n, cols)
        P = xp.matmul(Xf, W, out=B.aligned_empty((t * n, width), xp.result_type(Xf, W))).reshape(t, n, width)
    packed, core_backward = _lstm_core(P, fast, h0.data, c0.data, R.data, acts, plan, own_projection=True,
                                       rows=rows)
    source = x if table is None else table
    needs_weights = kernel.requires_grad or (bias is not None and bias.requires_grad)

    def backward(g):
        dz, gh, gc, dR = core_backward(g)
        flat = dz.reshape(t * n, width)
        dsource = dk = db = None
        if table is not None:
            grads = ops.rows_projection_grads(table, ids, flat, kernel, bias)
            dsource, dk = grads[0], grads[1]
            db = grads[2] if bias is not None else None
        else:
            if x.requires_grad:
                dsource = xp.swapaxes((flat @ kernel.data.T).reshape(t, n, features), 0, 1)
            if needs_weights:
                dW = Xf.T @ flat
                dk = dW[:features]
                db = dW[features] if bias is not None else None
        if bias is None:
            return dsource, dk, gh, gc, dR
        return dsource, dk, db, gh, gc, dR

    parents = (source, kernel, h0, c0, R) if bias is None else (source, kernel, bias, h0, c0, R)
    node = make(packed, parents, backward)
    return _unpack(node, t, 2, plan)


def _lstm_vectors(u, dtype):
    """Per-column constants of the fast path (sigmoid gates i, f, o; tanh gate c): σ(z) = ½ + ½·tanh(z/2),
    so the sigmoid columns of the pre-activation are halved (``scale``) and one tanh covers all four
    gates, then ``gate = tanh·scale + shift``."""
    xp = B.xp
    scale = xp.full(4 * u, 0.5, dtype=dtype)
    scale[2 * u:3 * u] = 1
    shift = xp.full(4 * u, 0.5, dtype=dtype)
    shift[2 * u:3 * u] = 0
    return scale, shift


def _is_fast(acts) -> bool:
    """Whether (recurrent activation, activation) is (sigmoid, tanh): the LSTM's fast path."""
    return acts[0] is ACTIVATIONS["sigmoid"] and acts[1] is ACTIVATIONS["tanh"]


def _lstm_core(P, prescaled, h0, c0, Rd, acts, plan, own_projection=False, rows=None):
    """Run the LSTM over the time-major input projection ``P`` (time, batch, 4·units), input-time order.

    ``prescaled``: P's sigmoid columns are already halved (the fast path; only with sigmoid/tanh).
    ``own_projection``: P is the caller's own array, which the fast path may overwrite with the gates.
    ``rows``: None, or (fast path, compiled kernels on, P None) ``(projected, ids)``: P[s] is
    ``projected[ids[s]]``, a projected embedding table (rows, 4·units) gathered by the ids (time, batch).
    Returns (the node's output (:meth:`_Plan.pack`), backward(g) -> (dZ (time, batch, 4·units) in input-time
    order, dh0, dc0, dR)).
    """
    if _is_fast(acts):
        return _lstm_fast(P, prescaled, h0, c0, Rd, plan, own_projection, rows)
    if prescaled:
        raise ValueError("a prescaled projection needs the sigmoid/tanh LSTM")
    return _lstm_generic(P, h0, c0, Rd, acts, plan)


def _lstm_fast(P, prescaled, h0, c0, Rd, plan, own_projection=False, rows=None):
    """Sigmoid/tanh LSTM: per step one matmul into the step's gate block, one tanh over all four gates
    (the sigmoid columns halved: σ(z) = ½ + ½·tanh(z/2)) and whole-row affine passes, all in place in
    buffers allocated once per call.

    With ``own_projection`` the gates are computed in P's own rows (the step's matmul goes to a small
    buffer that stays in cache and is added onto them): every step then reads and writes one block of
    main memory instead of reading P's and writing a separate gate array's (char-LSTM training step
    64.2 → 61.6 ms). The sums are the same (x·W + h·R, in either order of the one addition).

    With the compiled path on, the gate math after the tanh (gates, new cell) and the whole backward
    step but its matmul run as the kernels ``lstm_gates`` and ``lstm_gates_backward`` (one pass over
    the step's rows each); the NumPy ufuncs below are their reference twins. Masking and recurrent
    dropout stay around the kernels, in NumPy. With ``rows`` (a projected embedding table and the
    ids, see :func:`_lstm_core`) each step's gate rows are the table's rows for its ids plus h·R, in
    one pass (``gather_add``): the gathered projection is never written whole and read back (the
    NumPy twin: ``take``, then the sum; char-LSTM forward, 4,096 rows of 1,024: about −0.6 ms).
    Where it applies, :func:`_fused_forward` runs the steps instead (see the module's docstring).
    """
    xp = B.xp
    if rows is not None:
        table, ids = rows
        (t, n), width = ids.shape, table.shape[1]
        dtype = table.dtype
        A = B.aligned_empty((t, n, width), dtype)
    else:
        t, n, width = P.shape
        dtype = P.dtype
        A = P if own_projection else B.aligned_empty((t, n, width), dtype)  # gates i, f, g, o per input time
    u = width // 4
    scale, shift = _lstm_vectors(u, dtype)
    Rs = Rd * scale  # halved sigmoid columns
    H = B.aligned_empty((t + 1, n, u), dtype)  # processing order (aligned for the kernels: B.aligned_empty)
    C = B.aligned_empty((t + 1, n, u), dtype)
    TC = B.aligned_empty((t, n, u), dtype)  # tanh(c_new), processing order
    tmp = xp.empty((n, u), dtype=dtype)
    product = xp.empty((n, width), dtype=dtype) if own_projection else None  # h·R of a step
    compiled = jit.kernels("rnn", A)  # the gate math in one pass per step
    H[0] = h0
    C[0] = c0
    fused = _fused_forward(A, P, rows, Rs, plan, H, C, TC) if prescaled else None
    for s in range(0 if fused is not None else t):
        ix = plan.index[s]
        a = A[ix]
        if rows is not None:
            compiled.gather_add(table, ids[ix], xp.matmul(plan.dropped(H[s]), Rs, out=product), a)
        elif own_projection:
            a += xp.matmul(plan.dropped(H[s]), Rs if prescaled else Rd, out=product)
        else:
            xp.matmul(plan.dropped(H[s]), Rs if prescaled else Rd, out=a)
            a += P[ix]
        if not prescaled:
            a *= scale
        xp.tanh(a, out=a)
        c = C[s + 1]
        if compiled is not None:
            compiled.lstm_gates(a, C[s], c)
        else:
            a *= scale
            a += shift
            xp.multiply(a[:, u:2 * u], C[s], out=c)
            xp.multiply(a[:, :u], a[:, 2 * u:3 * u], out=tmp)
            c += tmp
        tc = TC[s]
        xp.tanh(c, out=tc)
        xp.multiply(a[:, 3 * u:], tc, out=H[s + 1])
        plan.carry(H[s + 1], H[s], s)
        plan.carry(C[s + 1], C[s], s)

    def backward(g):
        g_out, (gh, gc) = plan.unpack_grad(g, 2)
        dZ = B.aligned_empty((t, n, width), dtype)
        if fused is not None and jit.usable(A, gh, gc) and g.dtype == A.dtype and fused[0].strided_rows(g):
            kernels, index, parties = fused
            gc, gc_given = B.aligned_empty((n, u), dtype), gc  # (read and written at every step)
            gc[...] = gc_given
            part, finish = kernels.lstm_backward(g, A, TC, C, dZ, gc, gh, index, kernels.lstm_transposed(Rd), parties)
            gh = finish(parallel.run_together(part, parties, part.cancel))
            return dZ, gh, gc, plan.previous_states(H, dtype).T @ dZ.reshape(-1, width)
        RT = xp.ascontiguousarray(Rd.T)
        on = compiled is not None and jit.usable(A, gh, gc)  # g may have come in another dtype
        # without a mask the kernel adds the step's output gradient itself (g_out[s] is g[:, s])
        fold = on and plan.keep is None and jit.usable(A, g)
        if on and not fold:
            no_output_grad = xp.zeros((n, 1, u), dtype=dtype)
        if not on:
            dc = xp.empty((n, u), dtype=dtype)
            D = xp.empty((n, width), dtype=dtype)
            D2 = xp.empty((n, width), dtype=dtype)
        for s in reversed(range(t)):
            ix = plan.index[s]
            if not fold:
                gh += g_out[s]
            gh_new, gh_skip = plan.split_grad(gh, s)
            gc_new, gc_skip = plan.split_grad(gc, s)
            a = A[ix]
            tc = TC[s]
            d = dZ[ix]
            if on:
                if fold:
                    compiled.lstm_gates_backward(gh_new, g, s, gc_new, a, tc, C[s], d, gc)
                else:
                    compiled.lstm_gates_backward(gh_new, no_output_grad, 0, gc_new, a, tc, C[s], d, gc)
            else:
                xp.multiply(gh_new, tc, out=d[:, 3 * u:])  # o
                xp.multiply(tc, tc, out=tmp)
                xp.subtract(1, tmp, out=tmp)
                xp.multiply(gh_new, a[:, 3 * u:], out=dc)  # dL/dc_new
                dc *= tmp
                dc += gc_new
                xp.multiply(dc, a[:, 2 * u:3 * u], out=d[:, :u])  # i
                xp.multiply(dc, C[s], out=d[:, u:2 * u])  # f
                xp.multiply(dc, a[:, :u], out=d[:, 2 * u:3 * u])  # g
                # d gate / d pre-activation: σ' = (1 − σ)·σ, tanh' = 1 − g² = (1 − g)·g + (1 − g)
                xp.subtract(1, a, out=D)
                xp.multiply(D, a, out=D2)
                D2[:, 2 * u:3 * u] += D[:, 2 * u:3 * u]
                d *= D2
                xp.multiply(dc, a[:, u:2 * u], out=gc)
            xp.matmul(d, RT, out=gh)
            if plan.rdm is not None:
                gh *= plan.rdm
            if gh_skip is not None:
                gh += gh_skip
                gc += gc_skip
        dR = plan.previous_states(H, dtype).T @ dZ.reshape(-1, width)
        return dZ, gh, gc, dR

    return plan.pack(H, [H[t], C[t]]), backward


def _fused_forward(A, P, rows, Rs, plan, H, C, TC):
    """Run the fast path's steps as the compiled ``microkernel.lstm_forward``, the units shared among the
    pool's threads, where it applies: the compiled path on, float32, units a multiple of 16, no mask or
    recurrent dropout, an AVX-512 CPU, and a prescaled projection (the LSTM layer's, ``lstm_with_input``):
    ``rows`` (gathered) or ``P`` (C-contiguous). Returns ``(kernels, input time of each step (int64),
    parties)`` for ``microkernel.lstm_backward``, or None where it did not run."""
    t, n, width = A.shape
    u = width // 4
    if plan.keep is not None or plan.rdm is not None or u % 16 or A.dtype.char != "f" or Rs.dtype != A.dtype:
        return None
    kernels = jit.kernels("microkernel", A, H, C, TC)
    if kernels is None or not kernels.suited() or not kernels.lstm_ready():
        return None
    xp = B.xp
    index = xp.asarray(plan.index, dtype=xp.int64)
    if rows is not None:
        proj, ids = rows
        ids = ids[index]
        offsets = xp.where(ids < 0, ids + proj.shape[0], ids).astype(xp.int64) * width
    else:
        proj = P
        offsets = (index[:, None] * n + xp.arange(n, dtype=xp.int64)) * width
    if not jit.usable(A, proj):
        return None
    parties = min(parallel.threads(), u // 16)  # (a thread owns 16 units at least)
    steps = kernels.lstm_forward(H, C, TC, A, proj, offsets, index, kernels.lstm_panels(Rs))
    parallel.run_together(steps, parties, steps.cancel)
    return kernels, index, parties


def _lstm_generic(P, h0, c0, Rd, acts, plan):
    """Any activations of the table, step by step."""
    xp = B.xp
    (ract, dract), (act, dact) = acts
    t, n, width = P.shape
    u = width // 4
    dtype = P.dtype
    A = xp.empty((t, n, 4 * u), dtype=dtype)  # activated gates i, f, g, o per input time
    H = xp.empty((t + 1, n, u), dtype=dtype)
    C = xp.empty((t + 1, n, u), dtype=dtype)
    TC = xp.empty((t, n, u), dtype=dtype)  # act(c_new), processing order
    H[0] = h0
    C[0] = c0
    for s in range(t):
        ix = plan.index[s]
        a = A[ix]
        xp.matmul(plan.dropped(H[s]), Rd, out=a)
        a += P[ix]
        ract(a[:, :2 * u])
        act(a[:, 2 * u:3 * u])
        ract(a[:, 3 * u:])
        i, f, gg, o = a[:, :u], a[:, u:2 * u], a[:, 2 * u:3 * u], a[:, 3 * u:]
        c = C[s + 1]
        xp.multiply(f, C[s], out=c)
        xp.multiply(i, gg, out=H[s + 1])  # H[s + 1] as scratch before it receives h
        c += H[s + 1]
        act(c, out=TC[s])
        xp.multiply(o, TC[s], out=H[s + 1])
        plan.carry(H[s + 1], H[s], s)
        plan.carry(C[s + 1], C[s], s)

    def backward(g):
        g_out, (gh, gc) = plan.unpack_grad(g, 2)
        dA = xp.empty((t, n, 4 * u), dtype=dtype)
        Rt = xp.ascontiguousarray(Rd.T)
        for s in reversed(range(t)):
            ix = plan.index[s]
            gh += g_out[s]
            gh_new, gh_skip = plan.split_grad(gh, s)
            gc_new, gc_skip = plan.split_grad(gc, s)
            a = A[ix]
            i, f, gg, o = a[:, :u], a[:, u:2 * u], a[:, 2 * u:3 * u], a[:, 3 * u:]
            tc = TC[s]
            d = dA[ix]
            # o
            xp.multiply(gh_new, tc, out=d[:, 3 * u:])
            d[:, 3 * u:] *= dract(o)
            # the cell: dL/dc_new
            dc = gh_new * o
            dc *= dact(tc)
            dc += gc_new
            # i, f (one block), g
            xp.multiply(dc, gg, out=d[:, :u])
            xp.multiply(dc, C[s], out=d[:, u:2 * u])
            d[:, :2 * u] *= dract(a[:, :2 * u])
            xp.multiply(dc, i, out=d[:, 2 * u:3 * u])
            d[:, 2 * u:3 * u] *= dact(gg)
            gh = d @ Rt
            if plan.rdm is not None:
                gh *= plan.rdm
            gc = dc * f
            if gh_skip is not None:
                gh += gh_skip
                gc += gc_skip
        dR = plan.previous_states(H, dtype).T @ dA.reshape(-1, 4 * u)
        return dA, gh, gc, dR

    return plan.pack(H, [H[t], C[t]]), backward


# --------------------------------------------------------------------------------------- GRU


def gru(x_proj, h0, recurrent_kernel, recurrent_bias=None, reset_after=True, recurrent_activation="sigmoid",
        activation="tanh", mask=None, go_backwards=False, recurrent_dropout_mask=None, zero_output_for_mask=False,
        return_states=True):
    """The GRU recurrence (gates z, r, h) over the whole sequence, one tape node.

    ``x_proj`` (batch, time, 3·units) = x @ kernel + input bias; ``h0`` (batch, units) or None;
    ``recurrent_kernel`` (units, 3·units); ``recurrent_bias`` (3·units,) or None, used only with
    ``reset_after=True``. Returns ``(outputs, h_final)`` (``(outputs,)`` without ``return_states``).
    """
    xp = B.xp
    x_proj, (h0,), R, mask, n, t, u = _prepare(x_proj, [("h0", h0)], recurrent_kernel, 3, mask, "gru")
    ract, dract = _activation(recurrent_activation, "gru recurrent_activation")
    act, dact = _activation(activation, "gru activation")
    dtype = x_proj.dtype
    reset_after = bool(reset_after)
    bias = None
    if reset_after and recurrent_bias is not None:
        bias = _tensor(recurrent_bias, dtype)
        if bias.shape != (3 * u,):
            raise ValueError(f"gru: recurrent_bias must have shape {(3 * u,)}, got {bias.shape}")
    elif recurrent_bias is not None:
        raise ValueError("gru: recurrent_bias is used only with reset_after=True (reset_after=False adds the "
                         "whole bias to x_proj)")
    plan = _Plan(n, t, u, dtype, mask, go_backwards, zero_output_for_mask, recurrent_dropout_mask,
                 return_states)
    xT = xp.swapaxes(x_proj.data, 0, 1)
    Rd = R.data
    A = xp.empty((t, n, 3 * u), dtype=dtype)  # activated z, r, ĥ per input time
    H = xp.empty((t + 1, n, u), dtype=dtype)
    H[0] = h0.data
    # reset_after: (h·R + b)_h per input time; else r ⊙ h (the input of the h-block matmul)
    AUX = xp.empty((t, n, u), dtype=dtype)
    tmp = xp.empty((n, 3 * u if reset_after else 2 * u), dtype=dtype)
    # sigmoid/tanh with reset_after (Keras's and torch's default): the gate math in three kernels around
    # the two tanh passes (the NumPy ufuncs below are their twins)
    compiled = jit.kernels("rnn", A, H, AUX) if reset_after and ract is _sigmoid and act is _tanh else None
    if compiled is not None:
        xT = xp.ascontiguousarray(xT, dtype=dtype)  # time-major already when a layer projected it
        rbias = bias.data if bias is not None else xp.zeros(3 * u, dtype=dtype)
        if rbias.dtype != dtype or not jit.usable(xT, rbias):
            compiled = None
    for s in range(t):
        ix = plan.index[s]
        a, x = A[ix], xT[ix]
        hp = plan.dropped(H[s])
        if compiled is not None:
            xp.matmul(hp, Rd, out=tmp)
            compiled.gru_gates_input(x, tmp, rbias, a, AUX[ix])
            xp.tanh(a[:, :2 * u], out=a[:, :2 * u])
            compiled.gru_gates_candidate(x, AUX[ix], a)
            xp.tanh(a[:, 2 * u:], out=a[:, 2 * u:])
            compiled.gru_state(a, H[s], H[s + 1])
            plan.carry(H[s + 1], H[s], s)
            continue
        if reset_after:
            xp.matmul(hp, Rd, out=tmp)
            if bias is not None:
                tmp += bias.data
            xp.add(x[:, :2 * u], tmp[:, :2 * u], out=a[:, :2 * u])
            ract(a[:, :2 * u])
            AUX[ix] = tmp[:, 2 * u:]
            xp.multiply(a[:, u:2 * u], AUX[ix], out=a[:, 2 * u:])
        else:
            xp.matmul(hp, Rd[:, :2 * u], out=tmp)
            xp.add(x[:, :2 * u], tmp, out=a[:, :2 * u])
            ract(a[:, :2 * u])
            xp.multiply(a[:, u:2 * u], hp, out=AUX[ix])
            xp.matmul(AUX[ix], Rd[:, 2 * u:], out=a[:, 2 * u:])
        a[:, 2 * u:] += x[:, 2 * u:]
        act(a[:, 2 * u:])
        z, hh = a[:, :u], a[:, 2 * u:]
        h = H[s + 1]
        xp.subtract(H[s], hh, out=h)
        h *= z
        h += hh
        plan.carry(h, H[s], s)

    def backward(g):
        g_out, (gh,) = plan.unpack_grad(g, 1)
        dA = xp.empty((t, n, 3 * u), dtype=dtype)
        DH = xp.empty((t, n, u), dtype=dtype) if reset_after else None  # gradient of (h·R + b)_h
        Rt = xp.ascontiguousarray(Rd.T)
        drec = xp.empty((n, 3 * u), dtype=dtype)
        # sigmoid/tanh with reset_after (Keras's and torch's default): the gate math of a step in one kernel
        compiled = (jit.kernels("rnn", A, H, AUX, gh) if reset_after and ract is _sigmoid and act is _tanh
                    else None)
        dhp = xp.empty((n, u), dtype=dtype) if compiled is not None else None
        for s in reversed(range(t)):
            ix = plan.index[s]
            gh += g_out[s]
            g_new, g_skip = plan.split_grad(gh, s)
            a = A[ix]
            hprev = H[s]
            d = dA[ix]
            if compiled is not None:
                compiled.gru_gates_backward(g_new, a, hprev, AUX[ix], d, drec, DH[ix], gh)
                xp.matmul(drec, Rt, out=dhp)
                if plan.rdm is not None:
                    dhp *= plan.rdm
                gh += dhp
                if g_skip is not None:
                    gh += g_skip
                continue
            z, r, hh = a[:, :u], a[:, u:2 * u], a[:, 2 * u:]
            xp.subtract(hprev, hh, out=d[:, :u])
            d[:, :u] *= g_new
            d[:, :u] *= dract(z)
            xp.multiply(g_new, 1 - z, out=d[:, 2 * u:])
            d[:, 2 * u:] *= dact(hh)
            dhh = d[:, 2 * u:]
            if reset_after:
                xp.multiply(dhh, AUX[ix], out=d[:, u:2 * u])
                d[:, u:2 * u] *= dract(r)
                drec[:, :2 * u] = d[:, :2 * u]
                xp.multiply(dhh, r, out=drec[:, 2 * u:])
                DH[ix] = drec[:, 2 * u:]
                dhp = drec @ Rt
            else:
                drh = dhh @ Rd[:, 2 * u:].T  # gradient of r ⊙ hp
                hp = plan.dropped(hprev)
                xp.multiply(drh, hp, out=d[:, u:2 * u])
                d[:, u:2 * u] *= dract(r)
                dhp = d[:, :2 * u] @ Rd[:, :2 * u].T
                dhp += drh * r
            if plan.rdm is not None:
                dhp *= plan.rdm
            gh = g_new * z
            gh += dhp
            if g_skip is not None:
                gh += g_skip
        prev = plan.previous_states(H, dtype)
        flat = dA.reshape(-1, 3 * u)
        dR = xp.empty_like(Rd)
        dR[:, :2 * u] = prev.T @ flat[:, :2 * u]
        if reset_after:
            dR[:, 2 * u:] = prev.T @ DH.reshape(-1, u)
        else:
            dR[:, 2 * u:] = AUX.reshape(-1, u).T @ flat[:, 2 * u:]
        grads = [plan.x_grad(dA), gh, dR]
        if bias is not None:
            db = xp.empty(3 * u, dtype=dtype)
            db[:2 * u] = flat[:, :2 * u].sum(axis=0)
            db[2 * u:] = DH.reshape(-1, u).sum(axis=0)
            grads.append(db)
        return tuple(grads)

    parents = (x_proj, h0, R) if bias is None else (x_proj, h0, R, bias)
    node = make(plan.pack(H, [H[t]]), parents, backward)
    return _unpack(node, t, 1, plan)


__all__ = ["simple_rnn", "lstm", "lstm_with_input", "gru", "fusable", "ACTIVATIONS"]
