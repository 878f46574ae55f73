"""The Hydra config tree, installed as the package `xray_exp.conf` (pyproject.toml maps it here) so that
`python -m xray_exp` finds it as `pkg://xray_exp.conf` from any directory, in a checkout or a wheel."""
