"""`echoreg batch`: one row per study equal to `echoreg strain` run alone, a corrupt study is an
error row and not a stop, kills at random moments leave every study exactly once, and the table
is the same from one process, two worker processes and a Dask cluster."""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from EchoRegistrationLib.batch import RUN_COLUMNS, batch, find_studies
from EchoRegistrationLib.batch.cohort import NOT_RECORDED
from EchoRegistrationLib.cli import main
from EchoRegistrationLib.dlir.inference import cpu_has_amx
from EchoRegistrationLib.io.camus import write_camus_patient
from EchoRegistrationLib.sequence import EchoDataError
from EchoRegistrationLib.simulation import simulate_sequence
from EchoRegistrationLib.workflow import WorkflowSettings

# the batch mechanics on the optimiser with few steps (fast); the default method is tested on its own
SETTINGS = WorkflowSettings(method="deformable", options={"iterations": 5})
FAST = ["--method", "deformable", "--iterations", "5"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A CAMUS root: two simulated patients (4 frames, 64 x 64) and one with a corrupt cine."""
    root = tmp_path_factory.mktemp("camus")
    for k, seed in enumerate((1, 2), start=1):
        sim = simulate_sequence(view="A4C", cycle="half", n_frames=4, image_size=(64, 64), seed=seed)
        write_camus_patient(root, f"patient000{k}", "4CH", sim.sequence)
    broken = root / "patient0003"
    broken.mkdir()
    (broken / "patient0003_4CH_half_sequence.nii.gz").write_bytes(b"not an image at all")
    return root


@pytest.fixture(scope="module")
def reference(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch") / "one"
    return out, batch(cohort, out, SETTINGS)


def without_run_columns(rows):
    return [{k: v for k, v in row.items() if k not in RUN_COLUMNS} for row in rows]


def read_table(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_rows_equal_strain_run_alone_and_a_corrupt_study_is_an_error_row(cohort, reference, tmp_path):
    out, result = reference
    assert [r["study"] for r in result.rows] == ["patient0001_4CH", "patient0002_4CH", "patient0003_4CH"]
    assert [r["status"] for r in result.rows] == ["ok", "ok", "error"]
    assert "patient0003_4CH_half_sequence.nii.gz" in result.rows[2]["error"]
    assert result.rows[2]["gls_endo_pct"] is None and result.failed == ["patient0003_4CH"]
    assert result.rows[2]["device"] == result.rows[0]["device"] != "auto"  # resolved in error rows too
    assert main(["strain", str(cohort / "patient0002"), "-o", str(tmp_path / "alone"), *FAST]) == 0
    alone = {(row["measure"], row["region"]): row["value"]
             for row in read_table(tmp_path / "alone" / "strain_summary.csv")}
    row = result.rows[1]
    assert row["gls_endo_pct"] == pytest.approx(float(alone[("peak systolic strain", "GLS endocardial")]), abs=1e-3)
    assert row["ef_pct"] == pytest.approx(float(alone[("EF", "LV")]), abs=1e-3)
    assert -40 < row["gls_endo_pct"] < -5 and row["method"] == "deformable" and row["frames"] == 4
    table = read_table(out / "cohort.csv")
    assert [t["study"] for t in table] == [r["study"] for r in result.rows]
    assert float(table[0]["gls_mid_pct"]) == result.rows[0]["gls_mid_pct"] and table[2]["ef_pct"] == ""
    # the strain's warnings (5 steps leave segments unreliable) are in the table, not only the study's JSON
    report = json.loads((tmp_path / "alone" / "strain_summary.json").read_text())
    assert report["warnings"] and row["warnings"] == " | ".join(report["warnings"]) == table[1]["warnings"]
    assert row["unreliable_segments"] == sum(not s["reliable"] for s in report["segments"]) > 0
    assert table[2]["warnings"] == ""
    assert sorted(p.name for p in (out / "studies" / "patient0003_4CH").iterdir()) == ["study.json"]


def test_the_default_is_the_default_model_refined_as_strain_alone(cohort, tmp_path):
    """No settings: DLIR with the default model refined by 40 steps (workflow.DEFAULT_METHOD /
    DEFAULT_REFINE), the row equal to `echoreg strain` run alone with its defaults."""
    studies = find_studies(cohort)[:2]
    result = batch(studies, tmp_path / "default")
    assert [(r["status"], r["method"], r["model"], r["refine"], r["licence"]) for r in result.rows] == \
        [("ok", "dlir", "echoreg-dlir-camus", 24, "CC BY-NC-SA 4.0")] * 2
    # the networks' precision, which depends on the node (bfloat16 where its CPU has AMX)
    assert {r["network_precision"] for r in result.rows} == {"bfloat16" if cpu_has_amx() else "float32"}
    # ED 0, ES 3 in the patients' Info files: frame 3 went through the systole anchor, frame round(0.6 x 3)
    assert [r["anchor_frame"] for r in result.rows] == [2, 2]
    # both refined from the direct start: the better of the two here (registration.tracking.REFINE_STARTS)
    assert [r["refine_start"] for r in result.rows] == ["direct", "direct"]
    assert [(r["es_frame"], r["es_source"]) for r in result.rows] == [(3, "given by the file")] * 2
    assert main(["strain", str(cohort / "patient0001"), "-o", str(tmp_path / "alone")]) == 0
    alone = {(row["measure"], row["region"]): row["value"]
             for row in read_table(tmp_path / "alone" / "strain_summary.csv")}
    row = result.rows[0]
    assert row["gls_endo_pct"] == pytest.approx(float(alone[("peak systolic strain", "GLS endocardial")]), abs=1e-3)
    assert -40 < row["gls_endo_pct"] < -5


def test_a_resumed_batch_refuses_other_settings_and_names_them(cohort, reference):
    """One cohort table never mixes two analyses: the first run records its settings in
    batch.json; a rerun with other settings (here the method and its steps) is refused before any
    study runs, one that changes only the device is not."""
    out, first = reference
    assert (out / "batch.json").exists()
    assert first.rows[0]["refine"] is None and first.rows[0]["licence"] is None  # not DLIR: blank
    assert first.rows[0]["network_precision"] is None
    assert first.rows[0]["anchor_frame"] is None
    with pytest.raises(EchoDataError, match=r"other settings \(.*method 'deformable' -> 'dlir'.*refine None -> 24"):
        batch(cohort, out, WorkflowSettings())
    with pytest.raises(EchoDataError, match=r"iterations"):
        batch(cohort, out, WorkflowSettings(method="deformable", options={"iterations": 6}))
    again = batch(cohort, out, WorkflowSettings(method="deformable", options={"iterations": 5}, device="cpu"))
    assert (again.ran, again.skipped) == (0, 3)


def test_a_batch_of_an_earlier_version_is_resumed_only_with_its_method(cohort, reference, tmp_path):
    """A folder from before batch.json (its rows name the method and model) is not resumed with another
    method: its committed rows say how they ran."""
    import shutil

    out, _ = reference
    old = tmp_path / "old"
    shutil.copytree(out, old)
    (old / "batch.json").unlink()
    for study in (old / "studies").iterdir():  # nor the warnings and times' source columns
        row = json.loads((study / "study.json").read_text())
        (study / "study.json").write_text(json.dumps({k: v for k, v in row.items()
                                                      if k not in ("warnings", "frame_times_source")}))
    with pytest.raises(EchoDataError, match=r"study patient0001_4CH ran with .*'deformable'.*not .*'dlir'"):
        batch(cohort, old, WorkflowSettings())
    assert not (old / "batch.json").exists()
    again = batch(cohort, old, SETTINGS)
    assert (again.ran, again.skipped) == (0, 3) and (old / "batch.json").exists()
    # blank would read as "no warnings": the old ok rows say theirs were not recorded
    assert [row["warnings"] for row in again.rows] == [NOT_RECORDED, NOT_RECORDED, None]
    # and blank would read as "unknown times"
    assert [row["frame_times_source"] for row in again.rows] == [
        "not recorded (the study ran before the frame_times_source column existed)"] * 2 + [None]


def test_rerun_skips_finished_studies_and_retries_failed_on_request(cohort, reference):
    out, first = reference
    again = batch(cohort, out, SETTINGS)
    assert (again.ran, again.skipped) == (0, 3) and again.rows == first.rows
    retried = batch(cohort, out, SETTINGS, retry_failed=True)
    assert retried.ran == 1 and without_run_columns(retried.rows) == without_run_columns(first.rows)


def test_killed_three_times_then_resumed_every_study_once(cohort, reference, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "EchoRegistrationLib.cli", "batch", str(cohort), "-o", str(out), *FAST]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    rng = random.Random(14)
    for _ in range(3):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2, 12))
        process.send_signal(signal.SIGKILL)
        process.wait()
        studies = out / "studies"
        if studies.exists():  # committed folders are whole: each has its row
            assert all((p / "study.json").exists() for p in studies.iterdir() if not p.name.startswith("."))
    finished = subprocess.run(command, env=env, capture_output=True, text=True)
    assert finished.returncode == 1  # one study fails
    assert finished.stdout.startswith("3 studies, method deformable (optimisation)\n")  # says how it registers
    assert sorted(p.name for p in (out / "studies").iterdir()) == [r["study"] for r in reference[1].rows]
    table = read_table(out / "cohort.csv")
    assert [t["study"] for t in table] == [r["study"] for r in reference[1].rows]
    expected = read_table(reference[0] / "cohort.csv")
    assert without_run_columns(table) == without_run_columns(expected)


def test_ctrl_c_says_the_finished_studies_stay_and_the_same_command_resumes(cohort, tmp_path, monkeypatch, capsys):
    """Ctrl-C during a batch (here after its first study) exits 130 with a line saying that the studies finished
    stay and that the same command resumes, not that no outputs were written (they were)."""
    import EchoRegistrationLib.batch as batch_module
    out = tmp_path / "interrupted"

    def first_then_interrupt(*args, progress=None, **kwargs):
        def stop(row, done, total):
            progress(row, done, total)
            raise KeyboardInterrupt
        return batch(*args, progress=stop, **kwargs)

    monkeypatch.setattr(batch_module, "batch", first_then_interrupt)
    assert main(["batch", str(cohort), "-o", str(out), *FAST]) == 130
    error = capsys.readouterr().err
    assert f"echoreg: interrupted; the studies finished in {out} stay; the same command resumes the batch" in error
    assert len([p for p in (out / "studies").iterdir() if not p.name.startswith(".")]) == 1
    monkeypatch.undo()
    assert main(["batch", str(cohort), "-o", str(out), *FAST]) == 1  # resumed: the corrupt study fails
    assert "2 run now, 1 done before" in capsys.readouterr().out


def test_same_table_from_two_worker_processes_and_a_dask_cluster(cohort, reference, tmp_path):
    expected = without_run_columns(reference[1].rows)
    assert without_run_columns(batch(cohort, tmp_path / "two", SETTINGS, workers=2).rows) == expected
    distributed = pytest.importorskip("distributed", reason="Dask distributed not installed "
                                                            "(pip install 'echoregistration[batch]')")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        rows = batch(cohort, tmp_path / "dask", SETTINGS, scheduler=cluster.scheduler_address).rows
    assert without_run_columns(rows) == expected


def test_csv_frame_rate_reaches_the_dicom_reader(tmp_path):
    """A listing's frame_rate times a DICOM that records no time (it was refused for every DICOM); one
    that records another rate is refused, naming the rate the file records."""
    import numpy as np
    from input_files import write_us

    cine = np.random.default_rng(4).integers(0, 256, (3, 6, 8), np.uint8)
    write_us(tmp_path / "untimed.dcm", cine)
    write_us(tmp_path / "timed.dcm", cine, FrameTime=20)
    listing = tmp_path / "list.csv"
    listing.write_text("input,frame_rate\nuntimed.dcm,30\ntimed.dcm,30\n")
    untimed, timed = find_studies(listing)
    seq = untimed.study.load()
    assert seq.frame_times_known and seq.frame_times.tolist() == pytest.approx([0, 1 / 30, 2 / 30])
    with pytest.raises(EchoDataError, match=r"timed\.dcm: frame rate 30 frames/s given .*FrameTime \(20 ms\)\): "
                                            r"50 frames/s"):
        timed.study.load()


def test_a_batch_frame_rate_times_the_studies_that_give_none(tmp_path):
    """``echoreg batch --frame-rate``: a CAMUS root whose Info files give no FrameRate is timed by it (only a CSV
    could before); a CSV row's own frame_rate stays."""
    import numpy as np
    import SimpleITK as sitk

    from EchoRegistrationLib.cli import build_parser

    folder = tmp_path / "camus" / "patient0001"
    folder.mkdir(parents=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.float32)),
                    str(folder / "patient0001_4CH_half_sequence.nii.gz"))
    (folder / "Info_4CH.cfg").write_text("ED: 1\nES: 4\nNbFrame: 4\n")
    args = build_parser().parse_args(["batch", str(tmp_path / "camus"), "-o", str(tmp_path / "out"),
                                      "--frame-rate", "40"])
    (untimed,) = find_studies(tmp_path / "camus")
    (study,) = find_studies(tmp_path / "camus", frame_rate=args.frame_rate)
    assert not untimed.study.load().frame_times_known
    seq = study.study.load()
    assert seq.frame_times_known and seq.frame_times == pytest.approx([0, 0.025, 0.05, 0.075])
    listing = tmp_path / "list.csv"
    listing.write_text("id,input,frame_rate\nown,camus/patient0001,50\nnone,camus/patient0001,\n")
    assert [s.study.frame_rate for s in find_studies(listing, frame_rate=40)] == [50, 40]


def test_the_table_says_where_each_study_s_frame_times_came_from(tmp_path):
    """A cohort whose studies were timed in different ways (runs into one folder with another --frame-rate; a
    listing's own rates) shows it in the frame_times_source column; it recorded no timing before."""
    import dataclasses

    sim = simulate_sequence(view="A4C", cycle="half", n_frames=4, image_size=(64, 64), seed=1).sequence
    write_camus_patient(tmp_path / "camus", "patient0001", "4CH", sim)
    write_camus_patient(tmp_path / "camus", "patient0002", "4CH", dataclasses.replace(sim, frame_times=None))
    timed, untimed = find_studies(tmp_path / "camus")
    first = batch([timed, untimed], tmp_path / "out", SETTINGS)
    assert [r["frame_times_source"] for r in first.rows] == [f"Info FrameRate ({sim.frame_rate:g} frames/s)", None]
    listing = tmp_path / "list.csv"
    listing.write_text("id,input,frame_rate\nat40,camus/patient0002,40\nat50,camus/patient0002,\n")
    second = batch(find_studies(listing, frame_rate=50), tmp_path / "out", SETTINGS)
    assert [r["frame_times_source"] for r in second.rows] == ["frame_rate argument (40 frames/s)",
                                                              "frame_rate argument (50 frames/s)"]
    # resumed with another --frame-rate, a finished study keeps its times, and the table says which
    resumed = batch(find_studies(listing, frame_rate=60), tmp_path / "out", SETTINGS)
    assert (resumed.ran, [r["frame_times_source"] for r in resumed.rows]) == (0, [r["frame_times_source"]
                                                                                  for r in second.rows])
    table = read_table(tmp_path / "out" / "cohort.csv")
    assert [t["frame_times_source"] for t in table] == [r["frame_times_source"] for r in resumed.rows]


def test_listing_from_csv_and_folder(tmp_path):
    (tmp_path / "a.seq.nrrd").write_bytes(b"")
    (tmp_path / "a_labels.nii.gz").write_bytes(b"")
    (tmp_path / "b.mha").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("skip me")
    studies = find_studies(tmp_path)
    assert [(s.id, Path(s.study.input).name, s.study.labels and Path(s.study.labels).name) for s in studies] == \
        [("a", "a.seq.nrrd", "a_labels.nii.gz"), ("b", "b.mha", None)]
    listing = tmp_path / "list.csv"
    listing.write_text('id,input,landmarks,frame_rate,view\ns1,b.mha,"1,2,3,4,5,6",30,4CH\n,a.seq.nrrd,,,\n')
    first, second = find_studies(listing)
    assert first.id == "s1" and first.study.landmarks == ((1, 2), (3, 4), (5, 6))
    assert first.study.frame_rate == 30 and first.study.view == "4CH" and second.id == "a"
    assert Path(first.study.input) == tmp_path / "b.mha"
    listing.write_text("input,landmarks\nb.mha,1\n")
    with pytest.raises(ValueError, match=r"list.csv:2: expected six numbers"):
        find_studies(listing)
    listing.write_text("input,weight\nb.mha,1\n")
    with pytest.raises(ValueError, match="expected the columns"):
        find_studies(listing)
