"""xray_exp's Optuna sweeper: hydra-optuna-sweeper plus pruning, resume and a results table.

Select it with `override /hydra/sweeper: xray_optuna` (conf/search/path_a.yaml does). xray_exp/__main__.py
registers it explicitly because Hydra's plugin scan misses editable installs (docs/hydra.md).
"""
