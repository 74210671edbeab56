"""The Hydra app: compose ``conf/`` and run prepare -> train -> evaluate in one process.

    python -m rnnlab.train model=gru trainer.max_epochs=20
    python -m rnnlab.train -m model=rnn,lstm,gru,bilstm,lstm_attn,mlp,transformer

Each job writes under its own Hydra output directory and logs one MLflow run; the returned
value (the monitored validation loss) is what hyper-parameter sweepers optimise.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from rnnlab.config import CONF_DIR, validate
from rnnlab.errors import RnnlabError
from rnnlab.paths import RunPaths

log = logging.getLogger("rnnlab")


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    try:
        cfg = validate(cfg)
        from rnnlab.pipeline import run_pipeline

        result = run_pipeline(cfg, RunPaths(Path(hydra_cfg.runtime.output_dir)))
    except RnnlabError as err:
        log.error("%s", err)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            return None  # report and let the other jobs of the sweep go on
        sys.exit(2)
    if "evaluate" not in result:  # a DDP worker process
        return None
    test = result["evaluate"]["test"]["model"]
    log.info(
        "best val/loss %.5f | test %s",
        result["train"]["best_val_loss"],
        " ".join(f"{k}={v:.4f}" for k, v in test.items()),
    )
    return result["train"]["best_val_loss"]


if __name__ == "__main__":
    main()
