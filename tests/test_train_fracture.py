"""Fracture-stage training: pooling parity with the numpy runtime, losses, and a tiny full run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.heads import pool
from tests.test_fracture_data import write_fracatlas

tf = pytest.importorskip("tensorflow")

from training.networks import train_fracture as tfr  # noqa: E402


@pytest.mark.parametrize(("pooling", "r"), [("lse", 5.0), ("lse", 10.0), ("mean", 1.0)])
def test_tf_pooling_matches_the_numpy_runtime(pooling, r):
    logits = np.random.default_rng(0).normal(0, 3, size=(3, 5, 7, 4)).astype(np.float32)
    logits[1, 2, 3, 0] = 40.0  # one very confident cell (overflow check)
    pooled = tfr.pool_logits(tf.constant(logits), pooling, r).numpy()
    reference = np.stack([pool(item, pooling, r) for item in logits])
    np.testing.assert_allclose(pooled, reference, rtol=1e-5, atol=1e-4)


def test_lse_pooling_by_hand():
    # two cells, logits 0 and log(3): (1/1) * log((1 + 3) / 2) = log 2
    cells = tf.constant(np.log([[[[1.0], [3.0]]]], dtype=np.float32))
    assert tfr.pool_logits(cells, "lse", 1.0).numpy()[0, 0] == pytest.approx(np.log(2.0))


def test_losses_reward_a_map_that_matches_the_mask():
    masks = np.zeros((2, 4, 4), dtype=np.float32)
    masks[0, 1, 2] = 1.0
    bones = tf.constant([1, -1])  # a Hand crop and a crop of another region
    good = np.where(masks[..., None] > 0, 6.0, -6.0).repeat(4, axis=3).astype(np.float32)
    bad = -good
    good_shared, good_bone = tfr.losses(tf.constant(good), masks, bones, "lse", 5.0, 10.0)
    bad_shared, bad_bone = tfr.losses(tf.constant(bad), masks, bones, "lse", 5.0, 10.0)
    assert float(good_shared) < 0.1 < float(bad_shared)
    assert float(good_bone) < 0.1 < float(bad_bone)


def test_tiny_training_run_checkpoints_resumes_and_writes_cell_logits(tmp_path):
    data = write_fracatlas(tmp_path / "atlas", per_split=2, size=(64, 80))
    out = tmp_path / "run"
    common = [
        "--data", str(data), "--out", str(out), "--init", "none", "--size", "64",
        "--crop", "32", "--batch", "2", "--steps-per-epoch", "2", "--warmup-steps", "1",
        "--layer", "conv3_block1_out",  # a short trunk keeps the test fast
        "--keep-epochs",
    ]  # fmt: skip
    assert tfr.main([*common, "--epochs", "1"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 1 and np.isfinite(history[0]["loss_shared"])
    logits = np.load(out / "cell_logits_val.npz")
    assert logits["logits"].shape == (2, 8, 8, 4)  # 64 px / stride 8, four heads
    heads = np.load(out / "heads.npz")
    assert heads["kernel"].shape == (512, 4)
    # the bone heads start as the shared head plus a small, penalised difference
    assert np.abs(heads["kernel"][:, 1:] - heads["kernel"][:, :1]).max() < 0.05
    assert tfr.main([*common, "--epochs", "2", "--resume", "--no-final-logits"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert [item["epoch"] for item in history] == [1, 2]
    assert sorted(p.name for p in (out / "epochs").iterdir()) == ["epoch_01.npz", "epoch_02.npz"]
    with np.load(out / "epochs" / "epoch_02.npz") as kept, np.load(out / "last.npz") as last:
        assert all(np.array_equal(kept[k], last[k]) for k in kept.files if k != "state")
        assert not any(k.startswith("opt/") for k in kept.files)  # weights only
    (out / "cell_logits_test.npz").unlink()
    assert tfr.main([*common, "--logits-only", "test"]) == 0
    assert np.load(out / "cell_logits_test.npz")["logits"].shape == (2, 8, 8, 4)

    # a new run started from this one's weights (learning rate 0: they must come through as they
    # are), monitored on the upper limb
    follow = tmp_path / "follow"
    following = [str(follow) if item == str(out) else item for item in common]
    started = ["--start-from", str(out / "last.npz"), "--monitor", "upper_limb"]
    more = ["--epochs", "1", "--lr", "0", "--upper-limb-weight", "6", "--no-final-logits"]
    assert tfr.main([*following, *started, *more]) == 0
    with np.load(out / "last.npz") as before, np.load(follow / "best.npz") as after:
        trunk_keys = [key for key in before.files if key.startswith(("trunk/", "heads/"))]
        assert trunk_keys and all(np.array_equal(before[k], after[k]) for k in trunk_keys)
        state = json.loads(bytes(after["state"]).decode())
    assert state["start_from"] == str(out / "last.npz") and state["epoch"] == 1
    assert "auroc_upper_limb_own" in state["history"][0]
    # the export's provenance names the run it went on from
    from training.export.fracture import started_from

    lineage = started_from(state)
    assert lineage["run"] == "run" and lineage["epoch"] == 2
    assert lineage["command"].startswith("python -m training.networks.train_fracture")
    assert started_from({"epoch": 3}) is None


def test_the_upper_limb_monitor_sums_its_own_figures():
    figures = {"auroc_all_shared": 0.9, "auroc_upper_limb_own": 0.6, "top_cell_hit": float("nan")}
    assert tfr.monitored_score(figures, "all") == pytest.approx(0.9)
    assert tfr.monitored_score(figures, "upper_limb") == pytest.approx(0.6)


def test_model_card_says_how_long_the_fracture_run_trained(tmp_path):
    from training.export.fracture import run_minutes
    from training.report.model_card import fracture_training

    history = [
        {"train_minutes": 10.0, "val_minutes": 1.0},
        {"train_minutes": 5.0, "val_minutes": 0.5},
    ]
    (tmp_path / "history.json").write_text(json.dumps(history))
    assert run_minutes(tmp_path, 3.0) == pytest.approx(16.5)
    assert run_minutes(tmp_path / "missing", 3.0) == 3.0
    info = {"training_minutes": 11.0, "run_minutes": 16.5, "best_epoch": 1}
    sentence = fracture_training({"fracture": {"provenance": info}})
    assert "trained 16.5 min" in sentence and "kept are from 11.0 min, epoch 1" in sentence
    # weights from a later epoch than the run's monitor preferred (its last checkpoint)
    later = {"training_minutes": 16.5, "run_minutes": 16.5, "epoch": 2, "best_epoch": 1}
    sentence = fracture_training({"fracture": {"provenance": later}})
    assert "kept are from 16.5 min, epoch 2" in sentence
    parent = {"run": "first", "epoch": 31, "training_minutes": 90.3}
    went_on = {"training_minutes": 7.0, "run_minutes": 21.7, "epoch": 2, "started_from": parent}
    sentence = fracture_training({"fracture": {"provenance": went_on}})
    assert "trained 90.3 min" in sentence and "(run first, 31 epochs)" in sentence
    assert "for 21.7 min more" in sentence and "7.0 min into that second run, epoch 2" in sentence
    # a run that went on from a run that went on from another: every step is named and timed
    second = {"run": "second", "epoch": 2, "training_minutes": 7.0, "started_from": parent}
    third = {"training_minutes": 45.3, "run_minutes": 45.3, "epoch": 18, "started_from": second}
    sentence = fracture_training({"fracture": {"provenance": third}})
    assert "trained 90.3 min" in sentence and "(run first, 31 epochs)" in sentence
    assert "then 7.0 min more from its checkpoint (run second, epoch 2)" in sentence
    assert "for 45.3 min more" in sentence and "45.3 min into that last run, epoch 18" in sentence


def test_model_card_names_the_checkpoints_an_averaged_network_is_the_mean_of():
    from training.report.model_card import fracture_training, network_line

    sources = [
        {"checkpoint": f"runs/fracture/{run}/epochs/epoch_{n:02d}.npz", "epoch": n, "minutes": m}
        for run, epochs in (("a", (1, 2, 3)), ("b", (1, 2)))
        for n, m in zip(epochs, (3.1, 6.0, 9.2), strict=False)
    ]
    parent = {"run": "first", "epoch": 31, "training_minutes": 90.3}
    info = {"training_minutes": 6.0, "epoch": 2, "started_from": parent, "averaged_from": sources}
    sentence = fracture_training({"fracture": {"provenance": info}})
    assert "trained 90.3 min" in sentence and "then 2 runs side by side went on" in sentence
    assert sentence.endswith(
        "the mean of 5 checkpoints: epochs 1-3 of run a (9.2 min) and epochs 1-2 of run b (6.0 min)"
    )
    entry = {"provenance": info, "input_size": 384, "feature_shape": [24, 24, 1024],
             "quantization": "float32"}  # fmt: skip
    assert "trained in 90.3 + 9.2 + 6.0 min" in network_line("fracture", entry, {})
