"""Looking objects up by name: one mechanism for activations, losses, metrics,
optimizers, initializers, regularizers, constraints and layers."""

from __future__ import annotations

import difflib

_custom_objects: dict = {}


def register_custom_object(name: str, obj) -> None:
    """Make ``obj`` resolvable by ``name`` everywhere (used by ``register_keras_serializable``)."""
    _custom_objects[name] = obj


class Registry:
    """A name -> object table of one kind, with Keras-style resolution and clear errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict = {}

    def register(self, *names):
        """Decorator: ``@REGISTRY.register('relu')`` (the object's own ``__name__`` if none given)."""

        def decorate(obj):
            for name in names or (obj.__name__,):
                self._items[name] = obj
            return obj

        return decorate

    def add(self, name: str, obj) -> None:
        self._items[name] = obj

    def names(self) -> list:
        return sorted(self._items)

    def __contains__(self, name) -> bool:
        return name in self._items

    def lookup(self, name: str, argument: str | None = None, custom_objects: dict | None = None):
        """The object registered as ``name`` (custom objects first); a clear ValueError otherwise."""
        for table in (custom_objects or {}, _custom_objects, self._items):
            if name in table:
                return table[name]
        where = f" for argument {argument!r}" if argument else ""
        close = difflib.get_close_matches(name, self._items, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"Unknown {self.kind} {name!r}{where}.{hint} Expected one of: {', '.join(self.names())}, "
            f"or a callable / {self.kind} object.")
