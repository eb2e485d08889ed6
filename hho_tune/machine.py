"""What decides whether another machine gives the same scores; recorded in run.json and metrics.json.

A training is bit-identical only if every floating-point operation is done the same way, in the
same order. Same seed and same code are not enough for that:

- TensorFlow chooses its CPU kernels at run time. With oneDNN (on by default on x86-64 Linux,
  off with ``TF_ENABLE_ONEDNN_OPTS=0``) the matrix products run AVX2, AVX-512 or AMX code,
  whichever the CPU offers (``ONEDNN_MAX_CPU_ISA`` caps it). Another instruction set means other
  fused multiply-adds and another blocking of the sums, so other rounding.
- Intra-op threads split a sum into as many parts as there are threads: another thread count,
  another order of additions (``--threads``, ``HHO_TUNE_THREADS``, the usable cores).
- TensorFlow, Keras and NumPy versions change kernels, defaults and random streams; the Keras
  backend (TensorFlow or JAX) is a different implementation altogether.

A difference in the last bit of one step grows over hundreds of Adam steps into another score
(bench/RESULTS.md section 6 measures it). :func:`machine_description` records each of these
things, so two run.json files say whether their scores can be expected to agree. It never
imports TensorFlow or JAX (a run on Dask workers never starts them in the coordinating process);
what the backend itself reports is added when it is already running (final training).
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# CPU features that change which kernels oneDNN and Eigen run, in order of appearance.
ISA_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni",
    "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "amx_tile", "amx_bf16", "amx_int8", "amx_fp16",
    "asimd", "sve", "sve2",  # aarch64
)

# Environment variables that change the arithmetic or the threads of a training, or where it runs (None: unset).
RELEVANT_ENVIRONMENT = (
    "TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "TF_DETERMINISTIC_OPS",
    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "HHO_TUNE_THREADS",
    "KERAS_BACKEND", "HHO_TUNE_BACKEND", "PJRT_NPROC", "XLA_FLAGS", "CUDA_VISIBLE_DEVICES",
    "HHO_TUNE_WORKERS_PAY_OFF_SECONDS",
)

_SOFTWARE = ("tensorflow", "keras", "numpy", "jax")


def machine_description(*, threads: int | None = None, workers: int | None = None,
                        scheduler: str | None = None) -> dict[str, Any]:
    """Everything that must match for two machines to give the same scores, as plain JSON.

    ``threads``: the TensorFlow threads a training gets (``--threads``; None: TensorFlow's
    default). ``workers``/``scheduler``: where the trainings run (as for :func:`hho_tune.tune`).
    """
    return {
        "cpu": cpu_description(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "software": software_versions(),
        "keras_backend": keras_backend(),
        "onednn": onednn_setting(),
        "training_threads": training_threads(threads=threads, workers=workers, scheduler=scheduler),
        "environment": {name: os.environ.get(name) for name in RELEVANT_ENVIRONMENT},
        **runtime_report(),
    }


def cpu_description() -> dict[str, Any]:
    """Model, vendor, the instruction-set flags that matter, and the cores (all, and usable here)."""
    fields = _proc_cpuinfo()
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "model": fields.get("model name") or fields.get("Model") or platform.processor() or None,
        "vendor": fields.get("vendor_id") or fields.get("CPU implementer") or None,
        "architecture": platform.machine(),
        "isa_flags": [flag for flag in ISA_FLAGS if flag in flags],
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
    }


def software_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for package in _SOFTWARE:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions["numpy_blas"] = _numpy_blas()
    versions["hho_tune_source"] = source_revision()
    return versions


def source_revision() -> str | None:
    """The git commit hho-tune runs from ("+modified" with uncommitted changes); None when installed from a wheel.

    Its version number does not change from commit to commit, and an optimizer's code does.
    """
    import subprocess

    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        changes = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--",
                                  "hho_tune"], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+modified" if changes else commit


def keras_backend() -> str:
    """The backend the LSTM trains on: Keras's if it runs here, else the one chosen (``--backend``, :mod:`hho_tune.backend`)."""
    from hho_tune.backend import current_backend
    from hho_tune.errors import UsageError

    try:
        return current_backend()
    except UsageError:  # HHO_TUNE_BACKEND names no backend: the training will say so; a description must not
        return os.environ.get("HHO_TUNE_BACKEND") or "tensorflow"


def onednn_setting() -> str:
    """"on"/"off" as TF_ENABLE_ONEDNN_OPTS sets it, else TensorFlow's default for this platform."""
    value = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if value is not None:
        return "on" if value.strip().lower() in ("1", "true") else "off"
    default_on = platform.machine().lower() in ("x86_64", "amd64") and sys.platform in ("linux", "win32")
    return "on (TensorFlow's default here)" if default_on else "TensorFlow's default here (off on most platforms)"


def training_threads(*, threads: int | None, workers: int | None, scheduler: str | None) -> dict[str, Any]:
    """Intra-/inter-op threads of one training, and where the trainings run.

    On JAX, ``intra_op`` is the size of XLA's CPU pool (``PJRT_NPROC``) and ``inter_op`` is None:
    XLA has no second pool. One function for both backends: only the pool's name, the variables a
    worker machine reads and the second pool differ.
    """
    jax = keras_backend() == "jax"
    pool = " (XLA's pool)" if jax else ""
    variables = "HHO_TUNE_THREADS or PJRT_NPROC" if jax else "HHO_TUNE_THREADS"

    def threads_of(where: str, count: int | None) -> dict[str, Any]:
        return {"where": where, "intra_op": count, "inter_op": None if jax else count}

    if scheduler is not None:
        return threads_of(f"the workers of the Dask cluster at {scheduler}: each worker machine decides "
                          f"({variables} there); this section describes the coordinating machine only", None)
    cores = cpu_description()["usable_cores"] or 1
    if workers is not None and workers > 1:
        share = threads or max(1, cores // workers)  # as executors._worker_env gives each worker
        own = threads or cores  # this process trains with its own threads (coordinator_slot.CoordinatorAndWorkers)
        workers_part = f"{workers - 1} local Dask worker process{'es' if workers > 2 else ''}"
        return threads_of(f"this process ({own}) and {workers_part} ({share} each; the counts below){pool}, "
                          "the workers started only if this process's first training shows enough left to pay "
                          "for them", share)
    if threads is not None:
        return threads_of("this process (--threads: XLA's pool)" if jax else "this process (--threads)", threads)
    if jax:
        from hho_tune.backend import jax_threads

        own = jax_threads()
        if own is not None:
            return threads_of("this process (PJRT_NPROC: XLA's pool)", own)
    default = "XLA's" if jax else "TensorFlow's"
    return threads_of(f"this process ({default} default: the usable cores)", cores)


def runtime_report() -> dict[str, Any]:
    """What the running backend says about itself (TensorFlow's or JAX's); nothing for one not started."""
    return {**tensorflow_report(), **jax_report()}


def jax_report() -> dict[str, Any]:
    """JAX's devices once its runtime has started in this process (nothing before: asking would start it)."""
    from hho_tune.backend import jax_runtime_started, jax_threads

    if "jax" not in sys.modules or not jax_runtime_started():
        return {}
    try:
        import jax

        return {"jax_devices": [str(device) for device in jax.devices()], "jax_threads": jax_threads()}
    except Exception:  # a description must never stop a training
        return {}


def tensorflow_report() -> dict[str, Any]:
    """What a running TensorFlow says about itself: its thread pools and devices (nothing when not imported).

    The devices matter: with a GPU, Keras compiles the training step with XLA and runs the LSTM
    on cuDNN, other arithmetic than any CPU's.
    """
    tf = sys.modules.get("tensorflow")
    if tf is None or not hasattr(tf, "config"):
        return {}
    report: dict[str, Any] = {}
    try:
        report["tensorflow_threads"] = {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),  # 0: TensorFlow's default
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        }
        report["tensorflow_devices"] = [device.name for device in tf.config.list_logical_devices()]
    except Exception:  # a description must never stop a training
        pass
    return report


def _proc_cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if "flags" in fields or "Features" in fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def _numpy_blas() -> str | None:
    try:
        import numpy as np

        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}".strip()
    except Exception:  # older NumPy has no dict form
        return None
