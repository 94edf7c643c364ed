"""The torch-only safetensors reader and writer: exact round trips, exchange with the reference
``safetensors`` package in both directions, and clear errors for damaged files."""

import pytest
import torch

from EchoRegistrationLib.dlir.safetensors_format import (DTYPES, read_safetensors,
                                                         read_safetensors_metadata,
                                                         write_safetensors)


def sample_tensors() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    tensors = {f"t_{code}": (torch.randn(3, 5) * 100).to(dtype) for code, dtype in DTYPES.items()}
    tensors["scalar"] = torch.tensor(2.5)
    tensors["empty"] = torch.zeros(0, 4)
    tensors["strided"] = torch.arange(12.0).reshape(3, 4).t()  # not contiguous
    return tensors


def assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        assert torch.equal(a[name], b[name]), name


def test_round_trip_is_exact_for_every_dtype_with_metadata(tmp_path):
    tensors = sample_tensors()
    path = tmp_path / "w.safetensors"
    write_safetensors(tensors, path, metadata={"config": '{"a": 1}', "note": "é"})
    assert_same(read_safetensors(path), tensors)
    assert read_safetensors_metadata(path) == {"config": '{"a": 1}', "note": "é"}


def test_files_exchange_with_the_safetensors_package(tmp_path):
    reference = pytest.importorskip("safetensors.torch")
    tensors = {k: v.contiguous() for k, v in sample_tensors().items()}
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    write_safetensors(tensors, ours, metadata={"k": "v"})
    assert_same(reference.load_file(str(ours)), tensors)
    reference.save_file(tensors, str(theirs), metadata={"k": "v"})
    assert_same(read_safetensors(theirs), tensors)
    assert read_safetensors_metadata(theirs) == {"k": "v"}


def test_damaged_files_give_errors_that_name_the_file(tmp_path):
    path = tmp_path / "w.safetensors"
    write_safetensors({"x": torch.ones(4)}, path)
    data = path.read_bytes()
    for name, content, message in [("short.safetensors", data[:5], "shorter"),
                                   ("cut.safetensors", data[:-4], "does not fit"),
                                   ("huge.safetensors", b"\xff" * 8 + data[8:], "header length"),
                                   ("text.safetensors", data[:8] + b"{" * (len(data) - 8), "corrupt")]:
        damaged = tmp_path / name
        damaged.write_bytes(content)
        with pytest.raises(ValueError, match=message) as error:
            read_safetensors(damaged)
        assert name in str(error.value)
