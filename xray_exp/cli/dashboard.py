"""`xray-exp dashboard SWEEP_DIR|STORAGE_URL`: watch a sweep's Optuna study in optuna-dashboard, also while it runs."""
import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("dashboard", help="serve a sweep's Optuna study in optuna-dashboard (extra: dashboard)",
                              description=__doc__.splitlines()[0])
    p.add_argument("target", metavar="SWEEP_DIR|STORAGE_URL",
                   help="a sweep folder (its study.db) or an Optuna storage URL (sqlite:///..., postgresql://...)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 serves other machines too)")
    p.set_defaults(func=_dashboard)


def _dashboard(args: argparse.Namespace) -> int:
    from xray_exp.analysis.dashboard import serve, storage_of, studies

    def ready(base_url: str, storage) -> None:
        print(f"optuna-dashboard: {base_url}/dashboard (Ctrl-C stops it)", flush=True)
        found = studies(storage, base_url)
        for study in found:
            print(f"  study {study.name}: {study.trials} trials so far: {study.url}", flush=True)
        if not found:
            print("  no study in this storage yet; it shows up once a sweep creates one", flush=True)

    try:
        serve(storage_of(args.target), args.host, args.port, on_ready=ready)
    except KeyboardInterrupt:  # the normal way to stop a server
        pass
    return 0
