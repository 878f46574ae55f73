"""One training, from a composed config to its run folder: `python -m xray_exp` is this folder.

train.py runs it: train_args.py (config -> YOLO.train keyword arguments), data_yaml.py (dataset group ->
data.yaml), weights.py (model group -> local weights), guards.py (settings that cannot act), trainer.py
(best.pt ranked by the objective), monitor.py (per-epoch milestones, gates, pruning, NaN), trial_hook.py
(reporting to the sweeper's Optuna trial) and run_folder.py (metrics.json, the run-folder contract).
"""
