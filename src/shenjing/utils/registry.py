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
            f"or a callable / {self.kind} object."
        )

    # ------------------------------------------------------------ Keras config
    @staticmethod
    def instantiate(obj, config: dict):
        """A class built from ``config`` (its defaults when empty); a plain function as is."""
        if isinstance(obj, type):
            return obj.from_config(config) if hasattr(obj, "from_config") else obj(**config)
        if config:
            raise ValueError(f"{obj!r} is a function; it takes no config, got {config!r}")
        return obj

    def deserialize(self, config, custom_objects: dict | None = None, instantiate=None):
        """The object described by ``config``: a name (defaults) or ``{'class_name', 'config'}``."""
        instantiate = instantiate or self.instantiate
        if isinstance(config, str):
            return instantiate(self.lookup(config, custom_objects=custom_objects), {})
        if isinstance(config, dict):
            if "class_name" not in config:
                raise ValueError(f"{self.kind}: a config dict needs a 'class_name' key, got {config!r}")
            inner = config.get("config") or {}
            if not isinstance(inner, dict):
                raise ValueError(f"{self.kind}: 'config' must be a dict, got {inner!r}")
            return instantiate(self.lookup(config["class_name"], custom_objects=custom_objects), dict(inner))
        raise ValueError(f"{self.kind}: expected a name or a {{'class_name', 'config'}} dict, got {config!r}")

    def get(self, identifier, custom_objects: dict | None = None, example: str = "", instantiate=None):
        """Keras's ``get``: a name, a config dict, a class (its defaults), a callable (as is) or None."""
        if identifier is None:
            return None
        if isinstance(identifier, (str, dict)):
            return self.deserialize(identifier, custom_objects=custom_objects, instantiate=instantiate)
        if isinstance(identifier, type):
            return identifier()
        if callable(identifier):
            return identifier
        raise ValueError(
            f"Could not interpret {self.kind} identifier {identifier!r} (type {type(identifier).__name__}): "
            f"expected a name such as {example!r}, a callable, a config dict or None"
        )

    def serialize(self, obj):
        """``{'class_name', 'config'}`` for an object with ``get_config``; a named function gives its name."""
        if obj is None:
            return None
        if hasattr(obj, "get_config") and not isinstance(obj, type):
            return {"class_name": type(obj).__name__, "config": obj.get_config()}
        name = getattr(obj, "__name__", None)
        if name is None or name == "<lambda>":
            raise ValueError(
                f"{self.kind}: cannot serialize {obj!r}: neither an object with get_config() nor a named function"
            )
        return name


class Configurable:
    """Keras's config round trip for small objects: ``from_config``, ``repr`` and equality by config."""

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = object.__hash__
