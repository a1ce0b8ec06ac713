"""Where jobs run: executors (submitit; one module per backend under backends/), container
wrapping (Apptainer), cluster queries (sinfo, squeue)."""
