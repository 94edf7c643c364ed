"""Output sets written at once (io.atomic.atomic_output_set) and compact registration outputs
(issue 13, items 6 and 7)."""

import os
import stat

import numpy as np
import pytest

from EchoRegistrationLib import EchoSequence
from EchoRegistrationLib.io.atomic import atomic_output_set, check_output_folder
from EchoRegistrationLib.registration import register_sequence, save_registration


def test_a_new_output_set_appears_at_once_with_ordinary_permissions(tmp_path):
    with atomic_output_set(tmp_path / "out", ["a.txt", "sub/b.txt"]) as tmp:
        (tmp / "a.txt").write_text("a")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("b")
        assert not (tmp_path / "out").exists()  # nothing visible before the end
    assert (tmp_path / "out" / "sub" / "b.txt").read_text() == "b"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_or_interrupted_set_leaves_the_folder_as_it_was(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("earlier")
    (out / "notes.txt").write_text("the user's")
    for error in (OSError(28, "No space left on device"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with atomic_output_set(out, ["a.txt", "b.txt"], overwrite=True) as tmp:
                (tmp / "a.txt").write_text("new")
                raise error
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
        assert sorted(p.name for p in out.iterdir()) == ["a.txt", "notes.txt"]
        assert (out / "a.txt").read_text() == "earlier"
    with atomic_output_set(out, ["a.txt", "b.txt"], overwrite=True) as tmp:
        (tmp / "a.txt").write_text("new")
        (tmp / "b.txt").write_text("new")
    assert [(out / n).read_text() for n in ("a.txt", "b.txt", "notes.txt")] == ["new", "new", "the user's"]


def test_output_location_is_checked_before_the_work(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="file is a file"):
        check_output_folder(tmp_path / "file" / "deeper" / "out", ["a.txt"])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("")
    with pytest.raises(FileExistsError, match="a.txt: already exists"):
        check_output_folder(tmp_path / "out", ["a.txt"])
    assert check_output_folder(tmp_path / "new" / "out", ["a.txt"]) == tmp_path / "new" / "out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out"]  # the probe is gone


def test_registration_outputs_are_compact_and_itk_fields_optional(tmp_path):
    """A 4-frame 96 x 80 translation: by default three files (no per-frame fields), the fields
    compressed to a small part of their raw size; --itk-fields adds compressed .mha files."""
    texture = np.random.default_rng(3).uniform(0, 255, (96, 80)).astype(np.float32)
    frames = np.stack([np.roll(texture, t, axis=1) for t in range(4)])
    seq = EchoSequence(frames=frames, spacing=(0.5, 0.5), frame_times=np.arange(4) / 50)
    result = register_sequence(seq, "rigid", iterations=5, device="cpu")
    save_registration(result, seq, tmp_path / "default")
    assert sorted(p.name for p in (tmp_path / "default").iterdir()) == [
        "displacement.npz", "report.json", "warped.seq.nrrd"]
    raw = result.displacement.nbytes
    assert (tmp_path / "default" / "displacement.npz").stat().st_size < 0.8 * raw
    save_registration(result, seq, tmp_path / "itk", itk_fields=True)
    fields = sorted((tmp_path / "itk" / "fields").iterdir())
    assert [p.name for p in fields] == [f"displacement_t{t:03d}.mha" for t in range(4)]
    header = fields[0].read_bytes()[:600]
    assert b"CompressedData = True" in header
    assert fields[0].stat().st_size < 0.1 * 96 * 80 * 3 * 8  # frame 0: zero field, float64 x 3


def test_overwriting_removes_the_itk_fields_of_an_earlier_longer_run(tmp_path):
    """An earlier run's per-frame fields that the new set does not write (fewer frames, or no
    --itk-fields) go with the overwrite, so that none can pass for the new run's; the user's other
    files stay, and without overwrite nothing is touched."""
    texture = np.random.default_rng(4).uniform(0, 255, (64, 56)).astype(np.float32)
    long_seq = EchoSequence(frames=np.stack([np.roll(texture, t, axis=1) for t in range(4)]), spacing=(0.5, 0.5),
                            frame_times=np.arange(4) / 50)
    short_seq = EchoSequence(frames=long_seq.frames[:2], spacing=(0.5, 0.5), frame_times=np.arange(2) / 50)
    out = tmp_path / "out"
    save_registration(register_sequence(long_seq, "rigid", iterations=3, device="cpu"), long_seq, out, itk_fields=True)
    (out / "fields" / "notes.txt").write_text("the user's")
    short = register_sequence(short_seq, "rigid", iterations=3, device="cpu")
    with pytest.raises(FileExistsError):
        save_registration(short, short_seq, out, itk_fields=True)
    assert len(list((out / "fields").glob("*.mha"))) == 4
    save_registration(short, short_seq, out, overwrite=True, itk_fields=True)
    assert sorted(p.name for p in (out / "fields").iterdir()) == [
        "displacement_t000.mha", "displacement_t001.mha", "notes.txt"]
    save_registration(short, short_seq, out, overwrite=True)
    assert sorted(p.name for p in (out / "fields").iterdir()) == ["notes.txt"]
