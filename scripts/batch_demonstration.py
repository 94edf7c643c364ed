"""The batch must-show of issue 14, as one script (minutes; not a test):

20 simulated studies + the real A4C cine of ../shared/data (when present) + one corrupt file, listed in a
CSV. Side by side (separate output folders): ``echoreg batch`` in one process, with ``--workers 2``, on a
local Dask cluster, and a run killed at three random moments and resumed; then every study again with
``echoreg strain`` one by one. The tables are compared (all columns but ``seconds``), and the values of
``echoreg strain`` with the batch's. Prints one JSON summary. Needs the [batch] extra.

    PYTHONPATH=. python scripts/batch_demonstration.py WORKDIR [--frames 6 --size 80 --iterations 8]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import SimpleITK as sitk

from EchoRegistrationLib import save_sequence
from EchoRegistrationLib.batch import RUN_COLUMNS
from EchoRegistrationLib.cli import main
from EchoRegistrationLib.simulation import simulate_sequence

SHARED = Path(os.environ.get("ECHOREG_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
A4C_LANDMARKS = "108,120,118,30,146,106"  # septal annulus, apex, lateral annulus (mm) of that cine, as in the README


def make_cohort(folder: Path, frames: int, size: int, real: bool) -> Path:
    """The CSV listing: 20 simulated studies (A4C / A2C, half cycles), the real cine, a corrupt file."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(20):
        sim = simulate_sequence(view=("A4C", "A2C")[k % 2], cycle="half", n_frames=frames,
                                image_size=(size, size), seed=100 + k)
        cine = save_sequence(sim.sequence, folder / f"sim{k:02d}.seq.nrrd", overwrite=True)
        labels = sitk.GetImageFromArray(sim.sequence.labels[0])
        labels.SetSpacing(sim.sequence.spacing)
        sitk.WriteImage(labels, str(folder / f"sim{k:02d}_ed_gt.nii.gz"))
        rows.append({"id": f"sim{k:02d}", "input": cine.name, "labels": f"sim{k:02d}_ed_gt.nii.gz",
                     "view": "", "landmarks": "", "mask": ""})
    if real and (SHARED / "echo_a4c").is_dir():
        rows.append({"id": "real_a4c", "input": str(SHARED / "echo_a4c" / "a4c_sequence.nii.gz"), "labels": "",
                     "view": "", "landmarks": A4C_LANDMARKS,
                     "mask": str(SHARED / "echo_a4c" / "a4c_sequence_sector_mask.nii.gz")})
    (folder / "corrupt.seq.nrrd").write_bytes(b"NRRD0004\ntype: banana\n\n\x00\x01")
    rows.append({"id": "corrupt", "input": "corrupt.seq.nrrd", "labels": "", "view": "", "landmarks": "", "mask": ""})
    listing = folder / "cohort.csv"
    with open(listing, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "input", "labels", "landmarks", "mask", "view"])
        writer.writeheader()
        writer.writerows(rows)
    return listing


def table(folder: Path) -> list[dict]:
    with open(folder / "cohort.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in RUN_COLUMNS} for row in csv.DictReader(f)]


def strain_one_by_one(listing: Path, work: Path, fast: list[str], reference: list[dict]) -> list:
    """Every listed study with ``echoreg strain`` alone; the batch values that differ (> 0.001)."""
    differences = []
    with open(listing, newline="") as f:
        for row in csv.DictReader(f):
            if row["id"] == "corrupt":
                continue
            out = work / "alone" / row["id"]
            source = Path(row["input"]) if os.path.isabs(row["input"]) else listing.parent / row["input"]
            options = [*fast, "--overwrite"]
            if row["labels"]:
                options += ["--labels", str(listing.parent / row["labels"])]
            if row["landmarks"]:
                options += ["--landmarks", row["landmarks"]]
            if row["mask"]:
                options += ["--mask", row["mask"]]
            assert main(["strain", str(source), "-o", str(out), *options]) == 0
            alone = json.loads((out / "strain_summary.json").read_text())
            batch_row = next(r for r in reference if r["study"] == row["id"])
            for column, value in (("gls_endo_pct", alone["gls_endocardial"]["peak_pct"]),
                                  ("gls_mid_pct", alone["gls_mid_wall"]["peak_pct"]),
                                  ("ef_pct", alone["volumes"]["ef_pct"])):
                if abs(float(batch_row[column]) - value) > 1e-3:
                    differences.append((row["id"], column, batch_row[column], value))
    return differences


def killed_and_resumed(cli: list[str], env: dict, out: Path) -> list[dict]:
    """Kill the batch at three random moments, then let it finish; what each kill left."""
    rng = random.Random(2026)
    moments = []
    for _ in range(3):
        process = subprocess.Popen([*cli, "-o", str(out)], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        moment = rng.uniform(10, 60)
        time.sleep(moment)
        process.send_signal(signal.SIGKILL)
        process.wait()
        studies = out / "studies"
        entries = list(studies.iterdir()) if studies.exists() else []
        moments.append({"killed_after_s": round(moment, 1),
                        "committed": sum(not p.name.startswith(".") for p in entries),
                        "partial_folders": sum(p.name.startswith(".") for p in entries)})
    subprocess.run([*cli, "-o", str(out)], env=env, capture_output=True)
    return moments


def main_demo() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from distributed import LocalCluster

    parser = argparse.ArgumentParser()
    parser.add_argument("work", type=Path)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", type=int, default=80)
    parser.add_argument("--iterations", default="8", help="optimiser steps per level (the batch mechanics run "
                                                            "on the optimiser, --method deformable: fast)")
    parser.add_argument("--no-real", action="store_true", help="leave the real cine out (a busy machine)")
    args = parser.parse_args()
    fast = ["--method", "deformable", "--iterations", args.iterations]
    listing = make_cohort(args.work / "cohort", args.frames, args.size, not args.no_real)
    cli = [sys.executable, "-m", "EchoRegistrationLib.cli", "batch", str(listing), *fast]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def timed(extra: list[str]) -> float:
        start = time.time()
        subprocess.run([*cli, *extra], env=env, capture_output=True)
        return round(time.time() - start)

    # the runs are independent (separate output folders): run them side by side
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            ThreadPoolExecutor(4) as pool:
        one = pool.submit(timed, ["-o", str(args.work / "one")])
        two = pool.submit(timed, ["-o", str(args.work / "two"), "--workers", "2"])
        dask = pool.submit(timed, ["-o", str(args.work / "dask"), "--scheduler", cluster.scheduler_address])
        kills = pool.submit(killed_and_resumed, cli, env, args.work / "killed")
        report: dict = {"one_process_s": one.result()}
        reference = table(args.work / "one")
        alone = pool.submit(strain_one_by_one, listing, args.work, fast, reference)
        report.update(two_workers_s=two.result(), dask_s=dask.result(), kills=kills.result())
        report["strain_one_by_one_differences"] = alone.result()
    report["rows"] = len(reference)
    report["status"] = {r["study"]: r["status"] for r in reference}
    report["errors"] = {r["study"]: r["error"] for r in reference if r["status"] != "ok"}
    report["gls_endo_pct"] = {r["study"]: r["gls_endo_pct"] for r in reference}
    report["ef_pct"] = {r["study"]: r["ef_pct"] for r in reference}
    names = sorted(p.name for p in (args.work / "killed" / "studies").iterdir())
    report["resumed_folders_once_each"] = names == sorted(r["study"] for r in reference)
    for name in ("killed", "two", "dask"):
        report[f"{name}_table_equal"] = table(args.work / name) == reference
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main_demo()
