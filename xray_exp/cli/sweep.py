"""Worker processes sharing one Optuna study, one trial at a time each, on every GPU or on CPU.

`xray-exp sweep [--gpus LIST|all [--per-gpu K] | --workers N] [--multi-host] [overrides...]`.

On a machine with CUDA every visible GPU gets a worker by default (--per-gpu K packs K trials on each);
without CUDA, --workers N (default 2) processes. Worker logs go to <sweep dir>/worker-<k>.log; the
console gets one line per finished trial. The same command on other machines with the same
hydra.sweeper.storage (a database server) adds their workers to the same search.
"""
import os

from xray_exp import sweep_workers
from xray_exp.study import check_storage


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="run an Optuna search with worker processes on one study "
                                            "(every GPU, several per GPU, or CPU workers)",
                              description=__doc__.splitlines()[0])
    p.add_argument("--gpus", metavar="LIST",
                   help="GPU indices (0,1,3) or 'all' (the default where CUDA is visible); "
                        "worker k gets CUDA_VISIBLE_DEVICES=<its GPU> and device=0")
    p.add_argument("--per-gpu", type=int, metavar="K", help="workers (trials at a time) per GPU (default 1)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="unpinned worker processes: CPU-only machines, or N SLURM jobs at a time with "
                        f"hydra/launcher=slurm_gpu (default {sweep_workers.CPU_WORKERS} without CUDA)")
    p.add_argument("--multi-host", action="store_true",
                   help="this study is also run from other machines: refuse SQLite storage")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. search=path_a epochs=50")
    p.set_defaults(func=handle)


def handle(args) -> int:
    sweep = sweep_workers.compose_sweep(args.overrides)
    check_storage(sweep.storage, sweep.launcher, args.multi_host)
    unpinned = args.workers is not None or sweep.slurm  # no GPU to pick here: skip torch's import and CUDA probe
    specs = sweep_workers.plan_workers(args.gpus, args.per_gpu, args.workers,
                                       0 if unpinned else sweep_workers.cuda_device_count(),
                                       visible=os.environ.get("CUDA_VISIBLE_DEVICES"),
                                       gpus_from_launcher=sweep.slurm)
    codes = sweep_workers.run_workers(sweep, args.overrides, specs)
    return next((c for c in codes if c != 0), 0)
