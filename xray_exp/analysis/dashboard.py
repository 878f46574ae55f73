"""Serve a sweep's Optuna study in optuna-dashboard (the optional `dashboard` extra), also while it runs.

optuna-dashboard reads the study's storage on every request, so a running sweep's new trials, per-epoch
intermediate values and pruned trials show up as they are written; nothing is copied or cached here.
"""
import logging
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

from xray_exp.errors import XrayExpError
from xray_exp.study import STORAGE_FILE, default_storage

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'xray_exp[dashboard]'"


@dataclass
class StudyLink:
    name: str
    trials: int
    url: str


def storage_of(target: str) -> str:
    """A sweep folder or an Optuna storage URL -> the storage URL to serve.

    A folder must hold the study's SQLite file already: opening a missing one would create an empty
    database beside (or racing) the sweep that is about to create it.
    """
    if "://" in target:
        return target
    folder = Path(target).expanduser()
    if not folder.is_dir():
        raise XrayExpError(f"{target}: neither a sweep folder nor a storage URL (e.g. sqlite:///path/{STORAGE_FILE})")
    if not (folder / STORAGE_FILE).is_file():
        raise XrayExpError(f"{folder}: no {STORAGE_FILE} in this folder (not a sweep folder, or its sweep has not "
                           "started yet, or it uses another storage: pass that storage URL instead)")
    return default_storage(folder.resolve())


def open_storage(url: str):
    """The study storage, opened once for the listing and the server (the RDBStorage optuna-dashboard
    would build from the URL itself)."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return optuna.storages.RDBStorage(url)
    except (SQLAlchemyError, ImportError, ValueError) as e:  # bad URL, missing database driver, unreachable server
        raise XrayExpError(f"cannot open the study storage {url}: {type(e).__name__}: {e}") from None


def studies(storage, base_url: str) -> list[StudyLink]:
    """Each study in `storage` with its trial count and its trial list in the dashboard."""
    import optuna

    return [StudyLink(s.study_name, s.n_trials,
                      f"{base_url}/dashboard/studies/{storage.get_study_id_from_name(s.study_name)}/trials")
            for s in optuna.get_all_study_summaries(storage)]


class _QuietHandler(WSGIRequestHandler):
    """No line per request: the dashboard polls every few seconds while a sweep runs."""

    def log_message(self, format, *args) -> None:  # noqa: A002 - the stdlib's signature
        pass


def serve(url: str, host: str = "127.0.0.1", port: int = 8080, on_ready=None) -> None:
    """Serve the study storage at `url` on host:port until interrupted; `on_ready(base_url, storage)` runs
    once the server listens (port 0: any free port, named in base_url)."""
    try:
        from optuna_dashboard import wsgi
    except ImportError:  # first: without the extra nothing else happens
        raise XrayExpError(f"xray-exp dashboard needs optuna-dashboard: {INSTALL_HINT}") from None
    storage = open_storage(url)
    try:
        server = make_server(host, port, wsgi(storage), handler_class=_QuietHandler)
    except OSError as e:
        raise XrayExpError(f"cannot listen on {host}:{port}: {e.strerror or e} (choose another --port)") from None
    with server:
        if on_ready:
            on_ready(f"http://{host}:{server.server_port}", storage)
        server.serve_forever()
