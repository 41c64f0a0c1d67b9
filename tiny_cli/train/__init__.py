"""Training: inits, the batched engine and its hand-written gradients, outcomes, signals."""
