import json

import pytest
import torch

from value_lens.core.io import JsonlLog, atomic_write_text, load_artifact, save_artifact
from value_lens.errors import ArtifactError


def test_artifact_round_trip_is_bit_exact(tmp_path):
    t = {"a": torch.randn(3, 4, dtype=torch.float64), "b": torch.arange(5), "c": torch.tensor(2.5)}
    p = save_artifact(tmp_path / "x.safetensors", t, kind="Thing", meta={"k": [1, 2]})
    got, meta = load_artifact(p, kind="Thing")
    assert meta == {"k": [1, 2]}
    for k in t:
        assert torch.equal(got[k], t[k]) and got[k].dtype == t[k].dtype


def test_truncated_file_is_rejected(tmp_path):
    p = save_artifact(tmp_path / "x.safetensors", {"a": torch.randn(100)}, kind="Thing", meta={})
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 40])
    with pytest.raises(ArtifactError, match="truncated"):
        load_artifact(p, kind="Thing")


def test_edited_tensor_fails_checksum(tmp_path):
    p = save_artifact(tmp_path / "x.safetensors", {"a": torch.zeros(64)}, kind="Thing", meta={})
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF  # flip bits in the payload
    p.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        load_artifact(p, kind="Thing")


def test_wrong_kind_and_missing(tmp_path):
    p = save_artifact(tmp_path / "x.safetensors", {"a": torch.zeros(1)}, kind="Thing", meta={})
    with pytest.raises(ArtifactError, match="not a 'Other'"):
        load_artifact(p, kind="Other")
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "nope.safetensors", kind="Thing")


def test_atomic_write_leaves_no_temp_files_and_a_normal_mode(tmp_path):
    import os
    import stat

    atomic_write_text(tmp_path / "a.txt", "hello")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~mask


def test_jsonl_log_survives_a_torn_write(tmp_path):
    log = JsonlLog(tmp_path / "log.jsonl", key="id")
    log.append({"id": 1, "v": "a"})
    log.append({"id": [2, "x"], "v": "b"})
    with log.path.open("ab") as fh:  # simulate a kill mid-write
        fh.write(b'{"id": 3, "v"')
    assert log.done_keys() == {1, (2, "x")}
    log.append({"id": 4})
    lines = log.path.read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == [1, [2, "x"], 4]
