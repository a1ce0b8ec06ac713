"""memctl: MemControl mask search for diffusion fine-tuning on SLURM clusters."""

__version__ = "0.1.0"
