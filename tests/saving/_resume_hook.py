"""Test-only stand-in for the training-loop hook BackupAndRestore uses.

``fit`` must resume at ``model._initial_epoch_override`` when a callback sets it in ``on_train_begin``.
Until the loop does so itself, :func:`ensure_resume_hook` rebuilds ``Trainer.fit`` from its own source with
that one line added after ``callback_list.on_train_begin()``. It is a no-op once the loop has the hook.
"""

import inspect
import textwrap

HOOK = "initial_epoch = self.__dict__.pop('_initial_epoch_override', initial_epoch)"


def loop_has_hook() -> bool:
    from shenjing.models import training

    return "_initial_epoch_override" in inspect.getsource(training.Trainer.fit)


def ensure_resume_hook() -> bool:
    """Patch ``Trainer.fit`` if needed; returns True if it patched."""
    from shenjing.models import training

    if loop_has_hook():
        return False
    source = textwrap.dedent(inspect.getsource(training.Trainer.fit))
    anchor = "    callback_list.on_train_begin()\n"
    assert anchor in source, "the training loop changed: update tests/saving/_resume_hook.py"
    source = source.replace(anchor, anchor + "    " + HOOK + "\n", 1)
    namespace = dict(vars(training))
    exec(compile(source, training.__file__, "exec"), namespace)  # noqa: S102 - test-only, our own source
    training.Trainer.fit = namespace["fit"]
    return True
