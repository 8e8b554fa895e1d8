"""Training entry points (trainer), the callbacks that record a run, and the latent snapshots taken during training."""
