"""Imported by Hydra's plugin discovery, also inside `dvc exp run -S ...` (DVC scans the
repository root for hydra_plugins): misspelt overrides get rnnlab's did-you-mean."""

from rnnlab.hydra_overrides import install

install()
