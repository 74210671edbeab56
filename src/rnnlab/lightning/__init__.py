"""Lightning training: the one LightningModule, callbacks, and the Trainer factory."""

import os

# Process ranks that launchers set: torchrun (RANK, GROUP_RANK, LOCAL_RANK), SLURM's srun
# (SLURM_PROCID) and Lightning's own DDP launcher (LOCAL_RANK, NODE_RANK in its children).
_RANK_VARIABLES = ("RANK", "GROUP_RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK")


def is_primary_process() -> bool:
    """False in every training process but the first (global rank 0).

    DDP workers re-run the whole command; they must join training but leave data preparation,
    evaluation and tracking to rank 0.
    """
    return all(os.environ.get(name, "0") == "0" for name in _RANK_VARIABLES)


def external_launch() -> tuple[int, int] | None:
    """``(processes per node, nodes)`` when torchrun or srun already started one process per
    device, else None (Lightning starts the processes itself)."""
    env = os.environ
    if "TORCHELASTIC_RUN_ID" in env:  # torchrun
        per_node = int(env["LOCAL_WORLD_SIZE"])
        return per_node, int(env["WORLD_SIZE"]) // per_node
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_NTASKS_PER_NODE" in env:
        # e.g. "4" or "4(x2)": tasks per node, as `srun --ntasks-per-node` set them
        per_node = int(env["SLURM_NTASKS_PER_NODE"].split("(")[0])
        return per_node, int(env["SLURM_NNODES"])
    return None
