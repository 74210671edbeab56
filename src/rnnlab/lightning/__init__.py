"""Lightning training: the one LightningModule, callbacks, and the Trainer factory."""

import os


def is_primary_process() -> bool:
    """False in the worker processes that Lightning's DDP launcher starts.

    Those re-run the whole command with ``LOCAL_RANK`` (and ``NODE_RANK`` on other nodes) set;
    they must join training but leave data preparation, evaluation and tracking to rank 0.
    """
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
