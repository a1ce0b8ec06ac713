"""Fine-tuning on the cache: one loop, a torch or DeepSpeed engine, checkpoints, and
mitigations as hooks the loop calls (hooks.py, mitigations/)."""
