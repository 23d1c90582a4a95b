"""Callbacks that look inside training: :class:`TensorBoard` (event files for the TensorBoard viewer) and
:class:`GradientMonitor` (per-layer gradient and weight norms, warnings when gradients vanish or explode).

Both are re-exported by :mod:`shenjing.callbacks`.

Gradients exist only between ``backward()`` and the optimizer step (the loop clears them after each
step). The training loop hands them to callbacks through the hook

    Callback.on_gradients(batch, grads_and_vars, logs=None)

called once per training step, just before ``optimizer.apply_gradients(grads_and_vars)``, with the list of
``(gradient array or None, Variable)`` pairs the optimizer is about to apply. A callback must treat the
arrays as read-only (copy them to keep them).

TensorBoard's event files are written by this module (TFRecord framing, masked CRC-32C and the ``Event``
/ ``Summary`` / ``HistogramProto`` protobuf messages encoded by hand), so the callback needs no other
package; ``pip install shenjing[tensorboard]`` installs the viewer: ``tensorboard --logdir logs``.
"""

from __future__ import annotations

import math
import os
import socket
import struct
import sys
import time
import warnings

from . import backend as B
from .callbacks import Callback

__all__ = ["TensorBoard", "GradientMonitor", "EventFileWriter", "masked_crc32c", "crc32c"]


# ====================================================================================== event files
def _crc32c_table() -> list:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of TFRecord files."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(data: bytes) -> bytes:
    """One TFRecord: length (uint64 LE), its masked CRC, the data, the data's masked CRC."""
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


# -- protobuf wire format: just what Event, Summary, HistogramProto and TensorProto need
def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 values take ten bytes, as protobuf encodes them
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint((field << 3) | wire_type)


def _double(field: int, value: float) -> bytes:
    return _key(field, 1) + struct.pack("<d", float(value))


def _float(field: int, value: float) -> bytes:
    return _key(field, 5) + struct.pack("<f", float(value))


def _int(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(int(value))


def _bytes(field: int, value) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return _key(field, 2) + _varint(len(value)) + bytes(value)


def _packed_doubles(field: int, values) -> bytes:
    return _bytes(field, b"".join(struct.pack("<d", float(v)) for v in values))


def event_bytes(wall_time: float, step: int = 0, summary: bytes | None = None, file_version: str | None = None):
    """An ``Event`` message: wall_time (1), step (2), file_version (3) or summary (5)."""
    out = _double(1, wall_time) + _int(2, step)
    if file_version is not None:
        out += _bytes(3, file_version)
    if summary is not None:
        out += _bytes(5, summary)
    return out


def scalar_value(tag: str, value: float) -> bytes:
    """A ``Summary.Value`` holding ``simple_value`` (tag 1, simple_value 2)."""
    return _bytes(1, tag) + _float(2, value)


def histogram_proto(values, bins: int = 30) -> bytes:
    """A ``HistogramProto`` (min 1, max 2, num 3, sum 4, sum_squares 5, bucket_limit 6, bucket 7) of equal-width
    buckets; ``bucket_limit`` holds each bucket's right edge."""
    import numpy

    values = numpy.asarray(B.to_host(values), dtype="float64").ravel()
    values = values[numpy.isfinite(values)]
    if values.size == 0:
        return _double(1, 0) + _double(2, 0) + _double(3, 0) + _double(4, 0) + _double(5, 0)
    low, high = float(values.min()), float(values.max())
    if high == low:
        counts, edges = numpy.array([values.size], dtype="float64"), numpy.array([low - 0.5, high + 0.5])
    else:
        counts, edges = numpy.histogram(values, bins=bins, range=(low, high))
    return (_double(1, low) + _double(2, high) + _double(3, values.size) + _double(4, float(values.sum()))
            + _double(5, float(numpy.dot(values, values))) + _packed_doubles(6, edges[1:]) + _packed_doubles(7, counts))


def histogram_value(tag: str, values, bins: int = 30) -> bytes:
    return _bytes(1, tag) + _bytes(5, histogram_proto(values, bins))


def text_tensor_value(tag: str, text: str, plugin_name: str, content: bytes = b"") -> bytes:
    """A ``Summary.Value`` with a scalar string ``TensorProto`` (dtype 1 = DT_STRING 7, tensor_shape 2,
    string_val 8) and ``metadata`` (9) naming the plugin (SummaryMetadata.plugin_data: plugin_name 1, content 2)."""
    plugin_data = _bytes(1, plugin_name) + (_bytes(2, content) if content else b"")
    metadata = _bytes(1, plugin_data)
    tensor = _int(1, 7) + _bytes(2, b"") + _bytes(8, text)
    return _bytes(1, tag) + _bytes(9, metadata) + _bytes(8, tensor)


def summary_bytes(values) -> bytes:
    """A ``Summary`` message: repeated ``value`` (1)."""
    return b"".join(_bytes(1, v) for v in values)


class EventFileWriter:
    """Appends ``Event`` records to ``<log_dir>/events.out.tfevents.<time>.<host>.<pid>.<n>.v2``, the file
    TensorBoard reads. The first record declares ``brain.Event:2``."""

    _counter = 0

    def __init__(self, log_dir: str):
        os.makedirs(log_dir, exist_ok=True)
        EventFileWriter._counter += 1
        name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}."
                f"{EventFileWriter._counter}.v2")
        self.path = os.path.join(log_dir, name)
        self._file = open(self.path, "wb")
        self._write(event_bytes(time.time(), 0, file_version="brain.Event:2"))
        self.flush()

    def _write(self, event: bytes) -> None:
        if self._file is None:
            raise ValueError(f"EventFileWriter: {self.path} is closed")
        self._file.write(tfrecord(event))

    def add_values(self, values: list, step: int) -> None:
        """Write one Event holding a Summary of the given ``Summary.Value`` messages."""
        if values:
            self._write(event_bytes(time.time(), int(step), summary=summary_bytes(values)))

    def add_scalars(self, scalars: dict, step: int) -> None:
        self.add_values([scalar_value(tag, value) for tag, value in scalars.items()], step)

    def add_histogram(self, tag: str, values, step: int, bins: int = 30) -> None:
        self.add_values([histogram_value(tag, values, bins)], step)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _GradientCallback(Callback):
    """Base of the callbacks that read gradients (the loop calls ``on_gradients`` in every step)."""

    def __init__(self):
        super().__init__()
        self._batch_in_epoch = 0

    def on_gradients(self, batch, grads_and_vars, logs=None):
        """Called once per training step with the ``(gradient, variable)`` pairs about to be applied."""


def _layer_variables(model) -> list:
    """``[(layer name, [variables])]`` for the model's layers that have trainable weights, nested models
    opened up (their layers listed under their own names)."""
    out, seen = [], set()

    def visit(container):
        for layer in getattr(container, "layers", []):
            if hasattr(layer, "layers") and hasattr(layer, "_is_graph"):  # a nested model
                visit(layer)
                continue
            variables = [v for v in layer.trainable_weights if id(v) not in seen]
            seen.update(id(v) for v in variables)
            if variables:
                out.append((layer.name, variables))

    visit(model)
    rest = [v for v in getattr(model, "trainable_weights", []) if id(v) not in seen]
    if rest:
        out.append((getattr(model, "name", "model"), rest))
    return out


def _sq_norm(array):
    """The squared L2 norm as a 0-d array of the active module (float64 accumulation)."""
    from .autodiff import Tensor

    if isinstance(array, Tensor):
        array = array.data
    flat = array.ravel(order="K")  # a view for a column-major kernel too
    return B.xp.dot(flat, flat.astype("float64")) if flat.size else B.xp.zeros((), "float64")


# ==================================================================================== GradientMonitor
class GradientMonitor(_GradientCallback):
    """Per-layer gradient norm and weight norm, every epoch, with warnings when gradients vanish or explode.

    Each training step, the L2 norm of each layer's gradient (all its trainable weights together) is taken;
    the epoch's value is the mean over the epoch's steps. The weight norm is that of the layer's trainable
    weights at the end of the epoch. Both are recorded in ``history[layer_name]`` as ``(grad_norm,
    weight_norm)`` per epoch (``epochs`` lists the epoch indices).

    A layer's gradients *vanish* when ``grad_norm < vanish_threshold * weight_norm`` and *explode* when
    ``grad_norm > explode_threshold * weight_norm`` (``weight_norm`` is taken as 1 for a layer whose weights
    are all zero), or are not finite. Each condition is reported with ``warnings.warn`` naming the layer,
    once per layer and condition per ``fit`` (the first epoch it happens); every occurrence is listed in
    ``alerts`` as ``(epoch, layer, 'vanishing' | 'exploding', grad_norm, weight_norm)``.

    Args:
        vanish_threshold: relative threshold below which gradients count as vanishing (1e-6).
        explode_threshold: relative threshold above which gradients count as exploding (1e3).
        log_every: with ``verbose``, print the table of norms every ``log_every`` epochs.
        verbose: 1 prints the table (after the epoch's progress line), 0 prints nothing.
    """

    def __init__(self, vanish_threshold=1e-6, explode_threshold=1e3, log_every=1, verbose=1):
        super().__init__()
        if not vanish_threshold >= 0 or not explode_threshold > 0:
            raise ValueError(f"GradientMonitor: thresholds must be non-negative (vanish) and positive (explode), got "
                             f"vanish_threshold={vanish_threshold!r}, explode_threshold={explode_threshold!r}")
        if not isinstance(log_every, int) or log_every < 1:
            raise ValueError(f"GradientMonitor: log_every must be a positive integer, got {log_every!r}")
        self.vanish_threshold = float(vanish_threshold)
        self.explode_threshold = float(explode_threshold)
        self.log_every = log_every
        self.verbose = int(verbose)
        self.history: dict = {}
        self.epochs: list = []
        self.alerts: list = []
        self._layers: list = []
        self._owner: dict = {}
        self._sums: dict = {}
        self._counts: dict = {}
        self._pending: list = []  # (text lines, warnings) waiting for the progress bar to finish its line
        self._warned: set = set()
        self._steps_seen = 0

    # -------------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        self._layers = _layer_variables(self.model)
        self._owner = {id(v): name for name, variables in self._layers for v in variables}
        for name, _ in self._layers:
            self.history.setdefault(name, [])
        self._warned = set()
        self._steps_seen = 0

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._flush()
        self._sums = {name: 0.0 for name, _ in self._layers}
        self._counts = {name: 0 for name, _ in self._layers}

    def on_gradients(self, batch, grads_and_vars, logs=None):
        # Sums stay arrays of the active module (no device-to-host copy per step); floats at the epoch's end.
        squares = {}
        for grad, variable in grads_and_vars:
            name = self._owner.get(id(variable))
            if grad is None or name is None:
                continue
            squares[name] = squares.get(name, 0.0) + _sq_norm(grad)
        for name, total in squares.items():
            self._sums[name] = self._sums.get(name, 0.0) + B.xp.sqrt(total)
            self._counts[name] = self._counts.get(name, 0) + 1
        self._steps_seen += 1

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)
        lines, messages = [], []
        for name, variables in self._layers:
            count = self._counts.get(name, 0)
            if not count:
                continue
            grad_norm = float(self._sums[name]) / count
            weight_norm = math.sqrt(sum(float(_sq_norm(v.data)) for v in variables))
            self.history.setdefault(name, []).append((grad_norm, weight_norm))
            reference = weight_norm if weight_norm > 0 else 1.0
            kind = None
            if not math.isfinite(grad_norm) or grad_norm > self.explode_threshold * reference:
                kind = "exploding"
            elif grad_norm < self.vanish_threshold * reference:
                kind = "vanishing"
            flag = ""
            if kind is not None:
                flag = f"  <- {kind}"
                self.alerts.append((epoch, name, kind, grad_norm, weight_norm))
                if (name, kind) not in self._warned:
                    self._warned.add((name, kind))
                    limit = self.vanish_threshold if kind == "vanishing" else self.explode_threshold
                    relation = "below" if kind == "vanishing" else "above"
                    messages.append(
                        f"GradientMonitor: {kind} gradients in layer {name!r} at epoch {epoch + 1}: gradient norm "
                        f"{grad_norm:.3e} is {relation} {limit:g} x its weight norm {weight_norm:.3e} "
                        f"(ratio {grad_norm / reference:.3e})")
            lines.append(f"  {name:<24s} {grad_norm:12.4e} {weight_norm:12.4e} {grad_norm / reference:12.4e}{flag}")
        if self._steps_seen == 0 and ("no-gradients", "") not in self._warned:
            self._warned.add(("no-gradients", ""))
            messages.append("GradientMonitor: no gradients were received this epoch: the training loop did not call "
                            "on_gradients (was it used outside fit?)")
        if self.verbose and lines and (epoch + 1) % self.log_every == 0:
            header = [f"GradientMonitor, epoch {epoch + 1}:",
                      f"  {'layer':<24s} {'grad norm':>12s} {'weight norm':>12s} {'ratio':>12s}"]
            self._pending.append((header + lines, messages))
        else:
            self._pending.append(([], messages))

    def on_train_end(self, logs=None):
        self._flush()

    # ------------------------------------------------------------------ helpers
    def _flush(self) -> None:
        """Print and warn what the last epoch found. Deferred to the next epoch's start (or the end of
        training) so that it comes after the progress bar's final line for the epoch, not inside it."""
        pending, self._pending = self._pending, []
        for lines, messages in pending:
            if lines:
                sys.stdout.write("\n".join(lines) + "\n")
                sys.stdout.flush()
            for message in messages:
                warnings.warn(message, RuntimeWarning, stacklevel=2)

    def layer_names(self) -> list:
        return list(self.history)

    def gradient_norms(self, epoch: int = -1) -> dict:
        """``{layer: gradient norm}`` for one recorded epoch (the last by default)."""
        return {name: values[epoch][0] for name, values in self.history.items() if values}


# ======================================================================================== TensorBoard
class TensorBoard(_GradientCallback):
    """Writes TensorBoard event files: scalars per epoch (and every ``update_freq`` batches), histograms of
    the weights and of their gradients, and optionally the model's graph.

    ``log_dir/train`` gets the training values, ``log_dir/validation`` the validation values, with Keras's
    tags: ``epoch_loss``, ``epoch_accuracy``, … (validation values under the same tags in their own run,
    so TensorBoard overlays them) and ``batch_loss``, … at the global step.

    Args:
        log_dir: the folder TensorBoard is pointed at (``tensorboard --logdir log_dir``).
        update_freq: ``'epoch'``, or an integer N: also write the batch logs every N training batches
            (``'batch'`` means 1).
        histogram_freq: every this many epochs (from the first), write histograms of every trainable weight
            (``<layer>/<weight>/histogram``) and of its gradient averaged over the epoch's steps
            (``<layer>/<weight>/gradient``); 0 writes none.
        write_graph: write the model's architecture (its JSON config), which TensorBoard's Graphs dashboard
            draws (tag ``keras``, plugin ``graph_keras_model``).
        histogram_bins: buckets per histogram.

    ``write_images``, ``profile_batch``, ``embeddings_freq`` and the other Keras arguments are accepted for
    compatibility; non-default values are reported as unsupported.
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=False, update_freq="epoch",
                 histogram_bins=30, **kwargs):
        super().__init__()
        unsupported = {k: v for k, v in kwargs.items()
                       if k in ("write_images", "write_steps_per_second", "profile_batch", "embeddings_freq",
                                "embeddings_metadata", "embeddings_layer_names", "write_grads", "batch_size")
                       and v not in (None, False, 0, (0, 0))}
        unknown = set(kwargs) - {"write_images", "write_steps_per_second", "profile_batch", "embeddings_freq",
                                 "embeddings_metadata", "embeddings_layer_names", "write_grads", "batch_size"}
        if unknown:
            raise TypeError(f"TensorBoard: unexpected keyword argument(s) {sorted(unknown)}")
        if unsupported:
            warnings.warn(f"TensorBoard: {sorted(unsupported)} are not supported by shenjing and are ignored",
                          stacklevel=2)
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (not isinstance(update_freq, int) or update_freq < 1):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or a positive integer, got "
                             f"{update_freq!r}")
        if not isinstance(histogram_freq, int) or histogram_freq < 0:
            raise ValueError(f"TensorBoard: histogram_freq must be a non-negative integer, got {histogram_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.update_freq = update_freq
        self.histogram_freq = histogram_freq
        self.write_graph = bool(write_graph)
        self.histogram_bins = int(histogram_bins)
        self._writers: dict = {}
        self._global_step = 0
        self._grad_sums: dict = {}
        self._grad_steps = 0
        self._collect = False
        self._warned_no_gradients = False

    # -------------------------------------------------------------- writers
    def _writer(self, run: str) -> EventFileWriter:
        writer = self._writers.get(run)
        if writer is None:
            writer = self._writers[run] = EventFileWriter(os.path.join(self.log_dir, run))
        return writer

    @property
    def train_dir(self) -> str:
        return os.path.join(self.log_dir, "train")

    @property
    def validation_dir(self) -> str:
        return os.path.join(self.log_dir, "validation")

    # ---------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        self._global_step = 0
        writer = self._writer("train")
        if self.write_graph:
            try:
                text = graph_json(self.model)
            except (TypeError, ValueError, AttributeError, NotImplementedError) as err:
                warnings.warn(f"TensorBoard: cannot write the graph of model {self.model.name!r}: {err}",
                              stacklevel=2)
            else:
                writer.add_values([text_tensor_value("keras", text, "graph_keras_model", b"1")], 0)
                writer.flush()

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._collect = bool(self.histogram_freq) and epoch % self.histogram_freq == 0
        self._grad_sums = {}
        self._grad_steps = 0

    def on_gradients(self, batch, grads_and_vars, logs=None):
        if not self._collect:
            return
        for grad, variable in grads_and_vars:
            if grad is None:
                continue
            key = id(variable)
            entry = self._grad_sums.get(key)
            if entry is None:
                self._grad_sums[key] = [variable, B.xp.array(grad, dtype="float64", copy=True)]
            else:
                entry[1] += grad
        self._grad_steps += 1

    def on_train_batch_end(self, batch, logs=None):
        self._global_step += 1
        if self.update_freq != "epoch" and self._global_step % self.update_freq == 0:
            self._writer("train").add_scalars(
                {"batch_" + k: _to_float(v) for k, v in (logs or {}).items() if _is_scalar(v) and k not in
                 ("batch", "size")}, self._global_step)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {"epoch_" + k: _to_float(v) for k, v in logs.items() if not k.startswith("val_") and _is_scalar(v)}
        val = {"epoch_" + k[4:]: _to_float(v) for k, v in logs.items() if k.startswith("val_") and _is_scalar(v)}
        self._writer("train").add_scalars(train, epoch)
        if val:
            self._writer("validation").add_scalars(val, epoch)
        if self._collect:
            self._write_histograms(epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def _write_histograms(self, epoch: int) -> None:
        writer = self._writer("train")
        values = []
        for layer_name, variables in _layer_variables(self.model):
            for variable in variables:
                name = _tag_name(variable, layer_name)
                values.append(histogram_value(name + "/histogram", variable.data, self.histogram_bins))
                entry = self._grad_sums.get(id(variable))
                if entry is not None and self._grad_steps:
                    values.append(histogram_value(name + "/gradient", entry[1] / self._grad_steps,
                                                  self.histogram_bins))
        writer.add_values(values, epoch)
        if not self._grad_sums and not self._warned_no_gradients:
            self._warned_no_gradients = True
            warnings.warn("TensorBoard: no gradients were received, so only weight histograms are written (the "
                          "training loop did not call on_gradients)",
                          stacklevel=2)


def graph_json(model) -> str:
    """The model's JSON config for TensorBoard's Graphs dashboard. TensorBoard reads a layer's inputs only in
    Keras 3's form (``{"args": [keras tensor dicts with "keras_history"]}``), so Keras 2 style inbound nodes
    (``[[name, node_index, tensor_index, kwargs], ...]``) are rewritten that way."""
    import json

    from .saving.serialization import model_to_json

    config = json.loads(model_to_json(model))

    def tensor(ref):
        return {"class_name": "__keras_tensor__", "config": {"keras_history": [ref[0], ref[1], ref[2]]}}

    def convert(entry):
        if not isinstance(entry, dict):
            return
        nodes = entry.get("inbound_nodes")
        if isinstance(nodes, list):
            converted = []
            for node in nodes:
                if isinstance(node, list) and all(isinstance(ref, list) and len(ref) >= 3 for ref in node):
                    refs = [tensor(ref) for ref in node]
                    node = {"args": [refs[0]] if len(refs) == 1 else [refs], "kwargs": {}}
                converted.append(node)
            entry["inbound_nodes"] = converted
        for layer in (entry.get("config") or {}).get("layers") or []:
            convert(layer)

    convert(config)
    return json.dumps(config)


def _tag_name(variable, layer_name: str) -> str:
    name = str(getattr(variable, "name", None) or "weight").replace(":", "_")
    return name if "/" in name else f"{layer_name}/{name}"


def _is_scalar(value) -> bool:
    if isinstance(value, (str, bytes)):
        return False
    try:
        float(getattr(value, "item", lambda: value)())
    except (TypeError, ValueError):
        return False
    return True


def _to_float(value) -> float:
    if hasattr(value, "item"):
        value = value.item()
    return float(value)
