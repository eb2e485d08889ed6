"""Which Keras backend trains, TensorFlow (the default) or JAX, chosen once per process before Keras is imported.

Keras reads ``KERAS_BACKEND`` when it is first imported and keeps that backend for the life of
the process, so the choice has to be made, and checked, before anything imports Keras: the CLI
calls :func:`use_backend` right after parsing its flags, a Dask worker when it unpacks a run
(:mod:`hho_tune.dask_worker`), an unpickled LSTM objective when it is rebuilt there. Where the
choice comes from, first match wins:

1. ``--backend`` (or the ``backend`` an API caller passes);
2. ``HHO_TUNE_BACKEND``, for processes hho-tune does not start itself (``dask worker``);
3. ``KERAS_BACKEND``, when it names a backend hho-tune trains on (so ``KERAS_BACKEND=jax`` keeps
   meaning what it meant to Keras);
4. ``tensorflow``.

Everything backend-specific that the trainings need lives here too: starting the runtime with
its thread pool sized (:func:`start_backend`), seeding (:func:`seed_training`), and the two
things a reused model needs on JAX (:func:`track_in_optimizer`, :func:`build_before_fit`), and
how ``fit`` reads the arrays on TensorFlow (:func:`tf_data_autotune_off`).
This module imports neither Keras nor a backend at import time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from hho_tune.errors import UsageError

BACKENDS = ("tensorflow", "jax")
DEFAULT_BACKEND = "tensorflow"
BACKEND_VARIABLE = "HHO_TUNE_BACKEND"
JAX_THREADS_VARIABLE = "PJRT_NPROC"  # read by XLA's CPU client when it is created: the size of its thread pool
JAX_INSTALL_HINT = "pip install 'hho-tune[jax]'"

_chosen: str | None = None  # what use_backend settled on in this process, before Keras is imported


def check_backend_name(name: str, *, source: str = "--backend") -> str:
    """``name`` if hho-tune trains on it; else one line saying what is accepted."""
    if name not in BACKENDS:
        raise UsageError(f"{source} {name!r}: hho-tune trains on {' or '.join(BACKENDS)}")
    return name


def requested_backend(explicit: str | None = None) -> str:
    """The backend asked for: ``explicit``, else ``HHO_TUNE_BACKEND``, else a supported ``KERAS_BACKEND``, else tensorflow.

    ``KERAS_BACKEND`` naming another backend (torch, numpy) is passed over rather than refused:
    hho-tune's default is TensorFlow, and it sets ``KERAS_BACKEND`` itself for its own process.
    """
    if explicit is not None:
        return check_backend_name(explicit)
    pinned = os.environ.get(BACKEND_VARIABLE)
    if pinned:
        return check_backend_name(pinned, source=BACKEND_VARIABLE)
    keras_backend = os.environ.get("KERAS_BACKEND")
    if keras_backend in BACKENDS:
        return keras_backend
    return DEFAULT_BACKEND


def running_backend() -> str | None:
    """The backend Keras runs on in this process; None while Keras is not imported."""
    keras = sys.modules.get("keras")
    config = getattr(keras, "config", None)
    return None if config is None else str(config.backend())


def current_backend() -> str:
    """The backend this process trains on: Keras's if it runs, else the one chosen (or asked for) so far."""
    return running_backend() or _chosen or requested_backend()


def jax_installed() -> bool:
    """Whether ``import jax`` would work, found without importing it (a second or more)."""
    try:
        return importlib.util.find_spec("jax") is not None and importlib.util.find_spec("jaxlib") is not None
    except (ImportError, ValueError):
        return False


def use_backend(name: str | None = None) -> str:
    """Make ``name`` (None: :func:`requested_backend`) the backend of this process, or say in one line why not.

    Refused: an unknown name; ``jax`` without JAX installed; a process where Keras already runs
    on another backend (Keras cannot switch, and training on the wrong one would be recorded as
    the right one). Sets ``KERAS_BACKEND`` for the Keras import to come.
    """
    global _chosen

    name = requested_backend(name)
    if name == "jax" and not jax_installed():
        raise UsageError(f"the jax backend needs JAX, which is not installed: {JAX_INSTALL_HINT}")
    running = running_backend()
    if running is not None and running != name:
        raise UsageError(f"Keras already runs on {running} in this process and cannot switch to {name}: "
                         f"start a new process (for a library caller: set KERAS_BACKEND={name} before importing keras)")
    if running is None:
        os.environ["KERAS_BACKEND"] = name
    _chosen = name
    return name


def recorded_backend(document: Mapping[str, Any]) -> str:
    """The backend a run (run.json) or a comparison (compare.json) trained on, for ``--resume``.

    Its ``arguments`` say so since backends are recorded; before that, every run trained on
    what its ``machine`` section names, which was TensorFlow unless ``KERAS_BACKEND`` said otherwise.
    """
    for section, key in (("arguments", "backend"), ("fidelity", "backend"), ("machine", "keras_backend")):
        part = document.get(section)
        value = part.get(key) if isinstance(part, Mapping) else None
        if value in BACKENDS:
            return str(value)
    return DEFAULT_BACKEND


def check_worker_backend(run_backend: str) -> None:
    """On a Dask worker: refuse a run whose backend differs from the one this worker was started for.

    ``HHO_TUNE_BACKEND`` in a worker's environment pins it (see :mod:`hho_tune.dask_worker`): a
    worker pinned to JAX does not quietly train a TensorFlow run, or the other way round.
    """
    pinned = os.environ.get(BACKEND_VARIABLE)
    if pinned and pinned != run_backend:
        raise UsageError(f"this worker is pinned to {pinned} ({BACKEND_VARIABLE}={pinned}) and the run trains on "
                         f"{run_backend}: start the run with --backend {pinned}, or the worker with "
                         f"{BACKEND_VARIABLE}={run_backend}")
    use_backend(run_backend)


# --- starting the runtime --------------------------------------------------------------------


def start_backend(threads: int | None = None, inter_op_threads: int | None = None) -> str:
    """Start the backend this process trains on, once, with its thread pool sized to ``threads`` (None: all cores).

    TensorFlow: intra-op and inter-op pools (:func:`start_tensorflow`). JAX: XLA's CPU pool
    (:func:`start_jax`); XLA has no inter-op pool, so ``inter_op_threads`` does not apply there.
    Returns the backend's name.
    """
    name = current_backend()
    if running_backend() is None:
        use_backend(name)
    if name == "jax":
        start_jax(threads)
    else:
        start_tensorflow(threads, inter_op_threads)
    return name


def start_tensorflow(threads: int | None = None, inter_op_threads: int | None = None) -> None:
    """Import TensorFlow once, quietly, with its thread pools sized to ``threads`` (None: all cores).

    ``inter_op_threads`` sizes the pool that runs independent operations side by side
    (default: ``threads`` too).

    The pools can only be sized before TensorFlow's runtime starts, hence here.
    TensorFlow 2.21 writes start-up chatter (oneDNN, CUDA probing) from C++ before
    TF_CPP_MIN_LOG_LEVEL is read, so
    file descriptor 2 is pointed at a temporary file for the import; if the import fails,
    what it wrote is replayed so that the real error is not hidden.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            if threads is not None:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
            if inter_op_threads or threads:
                tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads or threads)
            tf.config.list_physical_devices()  # the CUDA probe happens here, still muted
        except BaseException:
            os.dup2(saved_stderr, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)


def start_jax(threads: int | None = None) -> None:
    """Start JAX's CPU runtime once, its thread pool sized to ``threads`` (None: XLA's default, one per usable core).

    XLA's CPU client sizes its pool from ``PJRT_NPROC`` when it is created, at the first
    computation, and never again: so the variable is set here, before that, and a later call
    with other threads changes nothing (as with TensorFlow). The pool runs the operations of
    a training step (XLA has no separate inter-op pool). ``XLA_FLAGS`` is left to the user.
    """
    if jax_runtime_started():
        return
    if threads is not None:
        os.environ[JAX_THREADS_VARIABLE] = str(threads)
    import jax

    jax.devices()  # creates the client now, with the pool size above


def jax_runtime_started() -> bool:
    """Whether XLA's client exists in this process (its pool size is then fixed); never starts it."""
    jax = sys.modules.get("jax")
    if jax is None:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # another JAX: assume started, so that nothing is changed under a running client
        return True


def jax_threads() -> int | None:
    """The size of XLA's CPU pool as ``PJRT_NPROC`` sets it (None: XLA's default)."""
    value = os.environ.get(JAX_THREADS_VARIABLE, "")
    return int(value) if value.strip().isdigit() else None


def before_saving() -> None:
    """Call before ``model.save``: on JAX, Keras's serializer imports TensorFlow whenever it is installed.

    (``keras.src.saving.serialization_lib`` asks whether an object is a ``tf.TensorShape``.)
    Imported here first, through :func:`start_tensorflow`, its C++ start-up chatter stays off
    the terminal; Keras keeps training and saving on JAX.
    """
    if current_backend() != "tensorflow" and importlib.util.find_spec("tensorflow") is not None:
        start_tensorflow()


# --- what a training needs from the backend --------------------------------------------------


def seed_training(seed: int) -> None:
    """``keras.utils.set_random_seed(seed)``, without importing TensorFlow on JAX.

    Keras's function seeds Python's ``random``, NumPy's global generator (from which Keras on
    JAX draws the order in which ``fit`` shuffles) and Keras's own seed, and also TensorFlow's
    whenever TensorFlow is installed, importing it: 3-4 s (measured here) in every JAX process
    for a seed that only ``tf.data`` reads. On JAX, with TensorFlow not yet imported,
    the same is done here without it (through Keras's global state, as its function does);
    anywhere else Keras's function itself is called, so TensorFlow's scores stay as recorded.
    """
    import keras

    if keras.config.backend() == "tensorflow" or "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
        return
    try:
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
        from keras.src.utils import rng_utils
    except ImportError:  # another Keras layout: its own function, TensorFlow import and all
        keras.utils.set_random_seed(seed)
        return
    import numpy as np

    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)


def track_in_optimizer(optimizer: Any, variables: Iterable[Any]) -> None:
    """On JAX, make ``variables`` (a reused model's schedule) part of the state the compiled training step reads.

    Keras on JAX compiles a stateless training step that takes the model's and the optimizer's
    variables as arguments; any other variable it reads, such as those of a learning-rate
    schedule, is baked into the compiled step as the constant it held when the step was traced.
    A reused model given another schedule then silently trained on the first one (measured:
    the same loss for learning rates 1e-3 and 3e-2). Tracked by the optimizer, the schedule's
    variables travel with its state and are read afresh at every step. TensorFlow reads them
    live anyway and is left as it is.
    """
    if current_backend() != "jax":
        return
    for variable in variables:
        optimizer._track_variable(variable)  # Keras's own registration of an optimizer variable


def build_before_fit(model: Any, x: Any, y: Any) -> None:
    """On JAX, build what ``fit`` would build from a first batch (metrics, loss, optimizer) from shapes instead.

    Why: on JAX, ``fit`` shuffles with NumPy's global generator each time it starts reading the
    data, and on a model whose metrics are not built yet it reads one batch first to build them,
    so a new model drew two shuffle orders and trained on the second, a reused one drew one:
    the same trial scored differently depending on whether its architecture was already in the
    pool. Built here, every model trains on the first order drawn after seeding. TensorFlow
    shuffles inside its own data pipeline, seeded per run, and is left as it is.
    """
    if current_backend() != "jax":
        return
    model._symbolic_build(data_batch=(x, y))  # Keras's own builder, as fit calls it, with a batch given


@contextlib.contextmanager
def tf_data_autotune_off() -> Iterator[None]:
    """Inside: the batches Keras makes of NumPy arrays on TensorFlow come with tf.data's autotuning off.

    Why: with autotuning on, a ``fit`` whose last epoch ended in a callback that took a second
    or more (the learning curve's validation score, in every trial of a search) took up to
    5 s more to return, the process idle: the training iterator's teardown waited for
    tf.data's autotuning thread. In a probe on Dask workers here, 11 of 18 trials of 6-11 s
    waited 0.3-5.0 s there; with autotuning off, none of 18 (bench/RESULTS.md section 4).
    Only the options change: Keras builds and iterates the same dataset, so the scores are the
    same bit for bit (tests/test_objective.py). The hook is installed once, on Keras's array adapter, and acts
    only in the thread inside this block, so the user's own ``fit`` calls are left alone. JAX
    reads the arrays without tf.data, and a Keras that keeps its adapter elsewhere is left as
    it is.
    """
    if current_backend() != "tensorflow" or not _install_autotune_hook():
        yield
        return
    _autotune_off.active = True
    try:
        yield
    finally:
        _autotune_off.active = False


_autotune_off = threading.local()


def _install_autotune_hook() -> bool:
    try:
        from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter
    except ImportError:
        return False
    if getattr(ArrayDataAdapter.get_tf_dataset, "hho_tune_hook", False):
        return True
    original = ArrayDataAdapter.get_tf_dataset

    def get_tf_dataset(adapter: Any) -> Any:
        dataset = original(adapter)
        if not getattr(_autotune_off, "active", False):
            return dataset
        import tensorflow as tf

        options = tf.data.Options()
        options.autotune.enabled = False
        return dataset.with_options(options)

    get_tf_dataset.hho_tune_hook = True  # type: ignore[attr-defined]
    ArrayDataAdapter.get_tf_dataset = get_tf_dataset
    return True
