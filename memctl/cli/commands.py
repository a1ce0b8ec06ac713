"""Registers every command on the main group: one module per command (or command group)."""

from memctl.cli import (  # noqa: F401
    baselines_cmd,
    cache_cmd,
    data_cmd,
    evaluate_cmd,
    init_cmd,
    model_cmd,
    peft_cmd,
    report_cmd,
    retrain_cmd,
    search_cmd,
    status_cmd,
    worker_cmd,
)
