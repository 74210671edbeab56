"""Lightning training: the one LightningModule, callbacks, and the Trainer factory."""
