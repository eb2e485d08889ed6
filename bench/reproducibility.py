"""Which settings change a score: the same configurations, the same seed, in fresh processes.

Trains configurations of the reference run (results/reference/20261127-071231-hho-s0, recorded
on another machine) at the default search fidelity (2 epochs of 10,000 images, seed 0), once
per setting, each in a fresh process: TensorFlow's defaults twice, one thread, oneDNN off, and
oneDNN held to AVX2 or to AVX-512 without AMX (``ONEDNN_MAX_CPU_ISA``: what a CPU without
those instructions would run). Prints each score and a digest of the trained weights: equal
digests are bit-identical trainings.

    python bench/reproducibility.py            # about 4 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import load_average

REPO = Path(__file__).resolve().parents[1]
# Trials 2 and 0 of the reference run, with the scores recorded there.
CONFIGS = {
    "trial 2 (2 layers)": ({"learning_rate": 0.0066055247980503174, "decay_epochs": 0.737339089801692,
                            "num_layers": 2}, 0.9536),
    "trial 0 (1 layer)": ({"learning_rate": 0.008144886973076106, "decay_epochs": 0.13526470965635223,
                           "num_layers": 1}, 0.9556),
}
SETTINGS: dict[str, tuple[dict[str, str], int | None]] = {
    "defaults": ({}, None),
    "defaults, again": ({}, None),
    "1 thread": ({}, 1),
    "oneDNN off": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, None),
    "oneDNN AVX2 only": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, None),
    "oneDNN AVX-512, no AMX": ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, None),
}


def child(threads: int | None) -> None:
    import numpy as np

    from hho_tune.objective import LstmConfig, LstmObjective, start_tensorflow, train_and_score, validation_accuracy

    start_tensorflow(threads)
    objective = LstmObjective()
    for label, (params, _) in CONFIGS.items():
        model, _ = train_and_score(LstmConfig.from_params(params), objective.data, epochs=objective.epochs, seed=0)
        digest = hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.get_weights())).hexdigest()[:12]
        print(json.dumps({"config": label, "score": validation_accuracy(model, objective.data), "weights": digest}),
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.threads)
        return
    from hho_tune.machine import machine_description

    machine = machine_description()
    print(f"cpu: {machine['cpu']['model']}, {machine['cpu']['usable_cores']} cores, "
          f"flags {' '.join(machine['cpu']['isa_flags'])}")
    print(f"software: {machine['software']}; load average at start {load_average()}")
    print("reference (another machine): " + ", ".join(f"{label} {score}" for label, (_, score) in CONFIGS.items()))
    for setting, (env, threads) in SETTINGS.items():
        command = [sys.executable, __file__, "--child", *(["--threads", str(threads)] if threads else [])]
        result = subprocess.run(command, env={**os.environ, **env, "PYTHONPATH": str(REPO)}, capture_output=True,
                                text=True, check=True)
        for line in result.stdout.splitlines():
            row = json.loads(line)
            print(f"{setting:<24} {row['config']:<20} score {row['score']:.4f}  weights {row['weights']}", flush=True)
    print(f"load average at end {load_average()}")


if __name__ == "__main__":
    main()
