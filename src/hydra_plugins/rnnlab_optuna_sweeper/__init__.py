"""A thin Hydra sweeper over current Optuna: ``hydra/sweeper=rnnlab_optuna``.

hydra-optuna-sweeper 1.3.0 pins optuna<3; this plugin keeps Hydra's command line and config
(``hydra.sweeper.params`` in Hydra's sweep syntax) and leaves the search to Optuna (TPE,
pruning, RDB storage). Hydra imports every plugin at start-up, so this module imports neither
optuna nor rnnlab's training code; the work is in ``rnnlab.optuna_search``.
"""

# No `from __future__ import annotations`: Hydra executes plugin modules outside sys.modules,
# where dataclasses cannot resolve string annotations.
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper


@dataclass
class RnnlabOptunaSweeperConf:
    _target_: str = "hydra_plugins.rnnlab_optuna_sweeper.RnnlabOptunaSweeper"
    study_name: str = "rnnlab"
    # An Optuna RDB URL shared by every machine of the study (the team server's PostgreSQL:
    # postgresql+psycopg2://rnnlab@HOST:5433/optuna); null: sqlite <repo root>/optuna.db.
    storage: str | None = None
    direction: str = "minimize"
    n_trials: int = 12
    n_jobs: int = 2  # trials asked for and launched together (the launcher runs them)
    seed: int | None = 42
    n_startup_trials: int = 4  # random trials before TPE models the space
    pruner: str = "median"  # median | none: stop trials whose val loss trails the median
    params: dict[str, str] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/sweeper", name="rnnlab_optuna", node=RnnlabOptunaSweeperConf, provider="rnnlab"
)


class RnnlabOptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        from rnnlab.optuna_search import StudySettings

        self.settings = StudySettings(**settings)
        self.config: Any = None
        self.launcher: Any = None
        self.hydra_context: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from rnnlab.optuna_search import run_study

        return run_study(self.settings, arguments, self.config, self.hydra_context, self.launcher)
