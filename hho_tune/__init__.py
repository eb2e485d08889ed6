"""hho-tune: tune hyperparameters with Harris Hawks Optimization, held honestly against TPE."""

from hho_tune.api import TuneResult, resume, tune
from hho_tune.errors import TrialPruned
from hho_tune.space import Param, SearchSpace

__all__ = ["Param", "SearchSpace", "TrialPruned", "TuneResult", "resume", "tune"]
