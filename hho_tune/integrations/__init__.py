"""hho-tune where users already work: Optuna (:mod:`hho_tune.integrations.optuna`)."""
