"""The two hand-made recipes of the original exercise, trainable with ``hho-tune train --preset NAME``.

They are the yardstick: what a person got without a tuner. Each is a frozen record of the
LSTM's parameters and the epochs the recipe trained for. "No decay" is written as
``decay_rate=1.0`` (the learning rate is multiplied by 1 every ``decay_steps`` steps), which
is exactly a constant learning rate with the one schedule :class:`LstmConfig` knows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from hho_tune.errors import UsageError
from hho_tune.objective import LstmConfig


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    config: LstmConfig
    epochs: int

    def params(self) -> dict[str, float | int]:
        return asdict(self.config)


SEED_BASELINE = Preset(
    name="seed-baseline",
    description="the exercise's first recipe: 1 LSTM layer, Adam 1e-4, no decay, 6 epochs",
    config=LstmConfig(learning_rate=1e-4, decay_steps=100, decay_rate=1.0, num_layers=1),
    epochs=6,
)

SEED_IMPROVED = Preset(
    name="seed-improved",
    description="the exercise's improved recipe: 2 LSTM layers, Adam 1e-3 decayed x0.96 every 100 steps, 20 epochs",
    config=LstmConfig(learning_rate=1e-3, decay_steps=100, decay_rate=0.96, num_layers=2),
    epochs=20,
)

PRESETS: dict[str, Preset] = {preset.name: preset for preset in (SEED_BASELINE, SEED_IMPROVED)}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})") from None
