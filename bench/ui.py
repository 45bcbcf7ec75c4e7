"""The MLflow UI as a user sees it: screenshots of a real study's pages in headless Chromium.

    python -m bench ui                        # or: python -m bench.ui [--out DIR] [--keep] [--store URI]

Runs a tiny random-search study through the CLI into a temporary SQLite store (or reads ``--store``), starts
``mlflow ui`` on a free port (a store given as ``http://...`` is a running server and is used as it is), and has
Debian's headless Chromium screenshot the experiment's landing page, its runs table (nothing expanded), the
study's parent run and the compare view of its trials. Each PNG goes to ``--out`` (default ``reports/ui/``).

What it checks: that each page rendered, i.e. the DOM Chromium ends with holds the text a rendered page shows (the
study's run name in the runs table, the run id on the run page, "Comparing N Runs"), not just a spinner; and which
page the experiment's link opens on (the runs table, or MLflow 3's GenAI "Overview" unless the experiment is tagged
``mlflow.experimentKind=custom_model_development``). What the pages show (filled or empty Source, Dataset and
Models columns, the hidden metric columns, ...) is for a person to judge from the screenshots.

Needs ``/usr/bin/chromium`` (Debian: ``apt-get install -y chromium``). Takes under a minute on 2 CPU cores: the
study 10-15 s, the UI about 20 s to answer, each page 3-9 s (the virtual-time budget does not run in real time).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient

from hpo_tune.server import free_port, wait_until_up

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
EXPERIMENT = "mnist"  # the CLI's experiment is the dataset's name
STUDY = "ui-demo"
STUDY_ARGS = ["strategy=random", "n_trials=3", "dataset.subset=200", "dataset.val_size=100", "trainer.epochs=1",
              "model.conv_channels=[4]", "model.dense=[8]", "progress=false"]
# Without the background-networking flags Chromium keeps dialling Google, which this network refuses.
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true"}


@dataclass(frozen=True)
class Study:
    experiment_id: str
    parent_id: str
    parent_name: str
    trial_ids: list[str]


@dataclass(frozen=True)
class Page:
    name: str
    fragment: str  # the part of the URL after '#'
    expect: str | None  # text a rendered page holds; None: only look


@dataclass(frozen=True)
class Shot:
    page: Page
    png: Path
    seconds: float
    title: str
    rendered: bool | None


def run_study(folder: Path) -> str:
    """Run the tiny study through the CLI into a SQLite store in ``folder``; return the store's URI."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    done = subprocess.run([sys.executable, "-m", "src.tune", *STUDY_ARGS, f"tracking.uri={uri}", f"study={STUDY}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, **QUIET})
    if done.returncode != 0:
        raise RuntimeError(f"the study failed with code {done.returncode}: {(done.stdout + done.stderr)[-3000:]}")
    return uri


def find_study(uri: str, experiment: str, study: str | None) -> Study:
    """The experiment's newest top-level run (named ``study`` if given) and its trials (children tagged ``trial``)."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise RuntimeError(f"no experiment {experiment!r} in {uri}")
    where = f"attributes.run_name = '{study}'" if study else ""
    runs = client.search_runs([found.experiment_id], where, order_by=["attributes.start_time DESC"])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    if not parents:
        raise RuntimeError(f"no top-level run{f' named {study!r}' if study else ''} in experiment {experiment!r}")
    parent = parents[0]
    children = client.search_runs([found.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    trials = [run.info.run_id for run in children if "trial" in run.data.tags]
    return Study(found.experiment_id, parent.info.run_id, parent.info.run_name, trials)


@contextmanager
def mlflow_ui(uri: str, folder: Path) -> Iterator[str]:
    """``mlflow ui`` on the store at ``uri``, on 127.0.0.1 and a free port, run in ``folder``; yields its address."""
    if uri.startswith(("http://", "https://")):
        yield uri.rstrip("/")
        return
    port = free_port()
    log = open(folder / "mlflow-ui.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host",
                                "127.0.0.1", "--port", str(port), "--workers", "1"], cwd=folder, stdout=log,
                               stderr=subprocess.STDOUT, env={**os.environ, **QUIET}, start_new_session=True)
    address = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(address, process, timeout_s=120)
        yield address
    finally:
        stop(process)
        log.close()


def stop(process: subprocess.Popen) -> None:
    """Stop the UI: its main process takes uvicorn and the job runners down with it; the group is killed after."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the session it was started in: only its own leftovers
    except ProcessLookupError:
        pass


def pages(study: Study) -> list[Page]:
    base = f"/experiments/{study.experiment_id}"
    listed = [Page("experiment", base, None),
              Page("runs", f"{base}/runs", study.parent_name),
              Page("parent-run", f"{base}/runs/{study.parent_id}", study.parent_id)]
    if len(study.trial_ids) > 1:  # the route the UI's Compare button opens (MLflow 3.17's getCompareRunPageRoute)
        query = urllib.parse.urlencode({"runs": json.dumps(study.trial_ids), "experiments":
                                        json.dumps([study.experiment_id])}, quote_via=urllib.parse.quote)
        listed.append(Page("compare-trials", f"/compare-runs?{query}", f"Comparing {len(study.trial_ids)} Runs"))
    return listed


def screenshot(url: str, png: Path, profile: Path, window: str, budget_ms: int) -> str:
    """Screenshot ``url`` into ``png`` with a fresh profile; return the DOM the page ended with."""
    profile.mkdir(parents=True)
    done = subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={window}",
                           f"--virtual-time-budget={budget_ms}", f"--screenshot={png}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium failed with code {done.returncode} on {url}: {done.stderr[-2000:]}")
    return done.stdout


def title(dom: str) -> str:
    found = re.search(r"<title[^>]*>(.*?)</title>", dom, re.S)
    return found.group(1).strip() if found else "?"


def shoot(address: str, page: Page, out: Path, work: Path, window: str, budget_ms: int) -> Shot:
    png = out / f"{page.name}.png"
    start = time.perf_counter()
    dom = screenshot(f"{address}/#{page.fragment}", png, work / f"chromium-{page.name}", window, budget_ms)
    (work / f"{page.name}.html").write_text(dom)
    rendered = None if page.expect is None else page.expect in dom
    return Shot(page, png, time.perf_counter() - start, title(dom), rendered)


def describe(shot: Shot) -> str:
    if shot.rendered is None:
        verdict = "(looked only)"
    else:
        verdict = "rendered" if shot.rendered else f"NOT RENDERED: no {shot.page.expect!r} in the page"
    return f"  {shot.page.name:15s}{shot.seconds:5.1f} s  {shot.png}  title {shot.title!r}  {verdict}"


def run(out: Path | None = None, keep: bool = False, store: str | None = None, experiment: str = EXPERIMENT,
        study: str | None = None, window: str = "1600,1000", budget_ms: int = 20_000) -> list[Shot]:
    """Take the screenshots and print what was checked; return the shots (none when Chromium is missing)."""
    print("\nMLflow UI in headless Chromium (screenshots of a study's pages)")
    if not CHROMIUM.is_file():
        print(f"  skipped: {CHROMIUM} is missing; install Debian's Chromium with `apt-get install -y chromium`")
        return []
    out = (out or ROOT / "reports" / "ui").resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    start = time.perf_counter()
    try:
        if store is None:
            store, study = run_study(work), STUDY
            print(f"  study {STUDY!r} run through the CLI in {time.perf_counter() - start:.1f} s", flush=True)
        found = find_study(store, experiment, study)
        with mlflow_ui(store, work) as address:
            print(f"  UI at {address} (experiment {experiment!r} = id {found.experiment_id}, parent run "
                  f"{found.parent_name!r} {found.parent_id}, {len(found.trial_ids)} trials)", flush=True)
            shots = []
            for page in pages(found):
                shots.append(shoot(address, page, out, work, window, budget_ms))
                print(describe(shots[-1]), flush=True)
        landing = shots[0].title.split(" - ")[0]
        print(f"  the experiment opens on: {landing!r}"
              f"{'' if landing == 'Runs' else ' (not the runs table)'}; total {time.perf_counter() - start:.1f} s")
        return shots
    finally:
        if keep:
            print(f"  kept {work} (store, UI log, DOM of each page); look again with: {sys.executable} -m mlflow ui "
                  f"--backend-store-uri {store} --workers 1")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for the PNGs (default reports/ui/)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store, UI log and page DOMs")
    parser.add_argument("--store", help="an existing tracking URI to look at instead of a fresh tiny study")
    parser.add_argument("--experiment", default=EXPERIMENT, help=f"experiment to show (default {EXPERIMENT})")
    parser.add_argument("--study", help="with --store: the study (parent run name) to show (default: the newest)")
    parser.add_argument("--window", default="1600,1000", help="browser window WIDTH,HEIGHT")
    parser.add_argument("--budget-ms", type=int, default=20_000, help="Chromium's virtual-time budget per page")
    args = parser.parse_args()
    shots = run(args.out, args.keep, args.store, args.experiment, args.study, args.window, args.budget_ms)
    sys.exit(0 if shots and all(shot.rendered is not False for shot in shots) else 1)


if __name__ == "__main__":
    main()
