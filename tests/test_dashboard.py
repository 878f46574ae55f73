"""`xray-exp dashboard`: optuna-dashboard on a real sweep folder, read while the sweep runs, loaded in a real
(headless) browser.

The sweep: two tiny 1-epoch trainings complete; then the same command resumes it to three trials with a pruner
that prunes at the first epoch, while the dashboard, started on two trials, keeps serving.
"""
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import ROOT, run_cli

STUDY = "dashboard_check"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def sweep(tiny_overrides: list[str], sweep_dir: Path, log: Path, *extra: str) -> subprocess.Popen:
    """`python -m xray_exp -m search=path_a ...` in the background, its output into `log`."""
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "xray_exp", "-m", "search=path_a", *tiny_overrides,
                                 "epochs=1", f"hydra.sweep.dir={sweep_dir}", f"hydra.sweeper.study_name={STUDY}", *extra],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def api_trials(study_url: str) -> list[tuple[int, str]]:
    """(number, state) of each trial, from the dashboard's own REST API (what its page renders)."""
    base, _, study_id = study_url.removesuffix("/trials").rpartition("/dashboard/studies/")
    with urllib.request.urlopen(f"{base}/api/studies/{study_id}?after=0", timeout=30) as response:
        return [(t["number"], t["state"]) for t in json.load(response)["trials"]]


@pytest.fixture(scope="module")
def served(tiny_overrides, tmp_path_factory):
    """(sweep folder, study page URL, API states seen while the resumed sweep ran, after it ended)."""
    tmp = tmp_path_factory.mktemp("dashboard")
    sweep_dir, log = tmp / "sweep", tmp / "sweep.log"
    first = sweep(tiny_overrides, sweep_dir, log, "hydra/sweeper/pruner=none", "hydra.sweeper.n_trials=2")
    assert first.wait(timeout=600) == 0, log.read_text()[-3000:]

    server = subprocess.Popen([sys.executable, "-m", "xray_exp.cli", "dashboard", str(sweep_dir), "--port", "0"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = [server.stdout.readline(), server.stdout.readline()]  # the URL, then one line per study
        assert banner[0].startswith("optuna-dashboard: http://127.0.0.1:"), (banner, server.stderr.read())
        assert f"study {STUDY}: 2 trials so far: " in banner[1]
        study_url = banner[1].rsplit(" ", 1)[1].strip()

        # mAP50 never exceeds 1: a lower threshold of 2 prunes trial 2 at its first judged epoch.
        resumed = sweep(tiny_overrides, sweep_dir, log, "hydra/sweeper/pruner=threshold",
                        "hydra.sweeper.pruner.lower=2.0", "hydra.sweeper.n_trials=3")
        during = set()
        while resumed.poll() is None:
            during |= set(api_trials(study_url))
            time.sleep(0.5)
        assert resumed.returncode == 0, log.read_text()[-3000:]
        # optuna-dashboard caches a study's trials for 2-10 s (optuna_dashboard/_storage.py): the end of
        # trial 2 shows within that, not at once.
        deadline = time.monotonic() + 30
        after = api_trials(study_url)
        while any(state == "Running" for _, state in after) and time.monotonic() < deadline:
            time.sleep(0.5)
            after = api_trials(study_url)
        yield sweep_dir, study_url, during, after
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_dashboard_reads_the_study_while_the_sweep_runs(served):
    _, _, during, after = served
    assert (2, "Running") in during  # the page showed trial 2 before it ended, without a restart
    assert after == [(0, "Complete"), (1, "Complete"), (2, "Pruned")]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (Debian: apt-get install chromium); "
                                             ".ci/run installs it")
def test_headless_chromium_shows_the_study_name_and_trial_count(served, tmp_path):
    _, study_url, _, _ = served
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--window-size=1280,900",
             # The page is a single-page app: its text exists only after the JavaScript fetched the study.
             "--virtual-time-budget=20000"]
    dom = subprocess.run([*flags, f"--user-data-dir={tmp_path / 'profile-dom'}", "--dump-dom", study_url],
                         capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = visible_text(dom.stdout)
    assert f"{STUDY} (id=" in text, text[:2000]  # the study's title
    assert "3 Trials" in text and "Pruned" in text, text[:2000]

    png = tmp_path / "dashboard.png"
    shot = subprocess.run([*flags, f"--user-data-dir={tmp_path / 'profile-shot'}", f"--screenshot={png}", study_url],
                          capture_output=True, text=True, timeout=180)
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    print(f"screenshot: {png}")


def visible_text(html: str) -> str:
    """The DOM's text without tags, styles and scripts, whitespace collapsed."""
    import re
    from html import unescape

    html = re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.S | re.I)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


@pytest.mark.slow
def test_dashboard_refuses_a_folder_without_a_study_and_a_busy_port(served, tmp_path):
    sweep_dir, study_url, _, _ = served
    proc = run_cli("dashboard", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"{tmp_path}: no study.db in this folder" in proc.stderr
    assert not (tmp_path / "study.db").exists()  # nothing created beside a sweep that has not started

    busy_port = study_url.split(":")[2].split("/")[0]  # the fixture's server holds it
    proc = run_cli("dashboard", str(sweep_dir), "--port", busy_port)
    assert proc.returncode == 2 and proc.stderr.startswith(f"xray-exp: error: cannot listen on 127.0.0.1:{busy_port}")


def test_dashboard_without_the_extra_says_how_to_install_it(tmp_path):
    (tmp_path / "study.db").touch()
    # A module of that name that fails to import, first on the path: as if optuna-dashboard were missing.
    (tmp_path / "optuna_dashboard.py").write_text("raise ImportError('No module named optuna_dashboard')\n")
    proc = run_cli("dashboard", str(tmp_path), env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 2
    assert proc.stderr == "xray-exp: error: xray-exp dashboard needs optuna-dashboard: pip install 'xray_exp[dashboard]'\n"
