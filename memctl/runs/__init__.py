"""Workflows on a chosen mask: retrain (retrain.py), evaluate (evaluate.py), baselines
(baselines.py), with the fine-tuning (fine_tune.py) and scoring (scoring.py) that search
trials share."""
