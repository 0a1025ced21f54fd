"""Averaging fracture checkpoints: the element-wise mean of their weights, with provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.networks import average_checkpoints as average


def write_checkpoint(path, trunk, heads, **state) -> None:
    arrays = {f"trunk/{i}": w for i, w in enumerate(trunk)}
    arrays.update({f"heads/{i}": w for i, w in enumerate(heads)})
    arrays["opt/0"] = np.ones(3)  # optimiser slots are not averaged
    arrays["state"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def state_of(path) -> dict:
    with np.load(path) as archive:
        return json.loads(bytes(archive["state"]).decode())


def test_the_average_is_the_mean_of_the_weights_and_names_its_sources(tmp_path):
    common = {"backbone": "mobilenet_v1", "layer": "pw13_relu", "command": "train"}
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    write_checkpoint(first, [np.zeros((2, 2)), np.ones(2)], [np.full(3, 2.0)], epoch=1,
                     minutes=3.0, **common)  # fmt: skip
    write_checkpoint(second, [np.ones((2, 2)), np.full(2, 3.0)], [np.zeros(3)], epoch=2,
                     minutes=6.04, start_from="parent.npz", **common)  # fmt: skip
    assert average.main(["--out", str(tmp_path / "mean"), str(first), str(second)]) == 0
    with np.load(tmp_path / "mean" / "best.npz") as mean:
        np.testing.assert_array_equal(mean["trunk/0"], np.full((2, 2), 0.5))
        np.testing.assert_array_equal(mean["trunk/1"], np.full(2, 2.0))
        np.testing.assert_array_equal(mean["heads/0"], np.full(3, 1.0))
        assert mean["trunk/0"].dtype == np.float32 and "opt/0" not in mean.files
    state = state_of(tmp_path / "mean" / "best.npz")
    assert state["epoch"] == 2 and state["start_from"] == "parent.npz"  # the last one's lineage
    assert state["best_epoch"] is None
    assert state["command"] == "train"  # each run's training command once
    assert state["averaged_by"] == (
        f"python -m training.networks.average_checkpoints --out {tmp_path / 'mean'} "
        f"{first} {second}"
    )
    assert state["averaged_from"] == [
        {"checkpoint": str(first), "epoch": 1, "minutes": 3.0},
        {"checkpoint": str(second), "epoch": 2, "minutes": 6.0},
    ]


def test_checkpoints_of_other_networks_are_refused(tmp_path):
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    write_checkpoint(first, [np.zeros(2)], [np.zeros(1)], backbone="mobilenet_v1", minutes=1.0)
    write_checkpoint(second, [np.zeros(2)], [np.zeros(1)], backbone="resnet50", minutes=1.0)
    with pytest.raises(ValueError, match="backbone"):
        average.write_average([first, second], tmp_path / "mean")
    write_checkpoint(second, [np.zeros(2), np.zeros(2)], [np.zeros(1)], backbone="mobilenet_v1",
                     minutes=1.0)  # fmt: skip
    with pytest.raises(ValueError, match="other weights"):
        average.write_average([first, second], tmp_path / "mean")


def test_an_existing_run_is_not_overwritten(tmp_path):
    first = tmp_path / "a.npz"
    write_checkpoint(first, [np.zeros(2)], [np.zeros(1)], minutes=1.0)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "best.npz").write_bytes(b"kept")
    with pytest.raises(SystemExit):
        average.main(["--out", str(tmp_path / "run"), str(first)])
    assert (tmp_path / "run" / "best.npz").read_bytes() == b"kept"
