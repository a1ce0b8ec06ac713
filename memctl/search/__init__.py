"""Mask search: space (mask <-> Optuna params), study (storage, sampler), objective (one
trial), worker (what each job runs), head (submits and follows workers), pareto (front and
pick), lookup (studies, chosen trials and their retrain targets). Workflows on a chosen mask
live in memctl.runs."""
