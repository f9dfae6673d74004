"""The training loop, its checkpoints, outputs and logs."""
