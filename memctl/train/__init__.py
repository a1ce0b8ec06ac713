"""Fine-tuning on the cache: one loop, a torch or DeepSpeed engine, checkpoints, mitigations."""
