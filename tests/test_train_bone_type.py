"""Bone-type training: what it draws, how it weighs classes, its threshold choice, and that a run
checkpoints, resumes and respects its time budget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.models import BONE_TYPE_CLASSES
from training.data.augment import JointMark
from training.data.datasets import Record
from training.networks import train_bone_type as tbt


def record(name: str, region: str, bone: str) -> Record:
    return Record(Path(name), bone, region, 0, "block0", name)


RECORDS = [
    record("A.jpg", "elbow", "Elbow"),
    record("B.jpg", "hand", "Hand"),
    record("C.jpg", "full_arm", "Other"),
    record("D.jpg", "other", "Other"),
]
MARKS = {"C.jpg": [JointMark("elbow", 0.5, 0.5), JointMark("shoulder", 0.4, 0.1)]}


def options(tmp_path: Path, **changes) -> tbt.Options:
    base = tbt.Options(data=tmp_path, out=tmp_path / "run", size=32, batch=8)
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_sources_add_joint_views_under_the_joints_class():
    sources = tbt.training_sources(RECORDS, MARKS)
    assert [s.index for s in sources["Elbow"]] == [0, 2]
    assert sources["Elbow"][1].mark == MARKS["C.jpg"][0]
    assert [s.index for s in sources["Shoulder"]] == [2]
    assert [s.index for s in sources["Other"]] == [2, 3]  # the whole arm stays Other
    assert sources["Other"][0].mark is None


def test_draw_batch_shapes_classes_weights_and_determinism(tmp_path):
    rng = np.random.default_rng(0)
    cache = [(rng.uniform(0, 1, (80, 60)) * 255).astype(np.uint8) for _ in RECORDS]
    sources = tbt.training_sources(RECORDS, MARKS)
    opts = options(tmp_path, batch=64)
    x, y, w = tbt.draw_batch(cache, sources, np.random.default_rng(1), opts)
    again = tbt.draw_batch(cache, sources, np.random.default_rng(1), opts)
    assert x.shape == (64, 32, 32, 3) and x.dtype == np.float32
    assert np.array_equal(x, again[0]) and np.array_equal(y, again[1])
    assert set(y.tolist()) == set(range(len(BONE_TYPE_CLASSES)))  # every class is drawn
    assert w.mean() == pytest.approx(1.0)
    counts = np.bincount(y, minlength=4)
    rarest = int(np.argmin(counts))
    assert w[y == rarest][0] >= w.max() - 1e-6  # the rarest class in the batch weighs most


def test_draw_batch_skips_classes_without_sources(tmp_path):
    cache = [np.full((40, 40), 128, np.uint8) for _ in RECORDS]
    sources = tbt.training_sources(RECORDS, {})
    _, y, _ = tbt.draw_batch(cache, sources, np.random.default_rng(0), options(tmp_path, batch=40))
    assert BONE_TYPE_CLASSES.index("Shoulder") not in y.tolist()


def test_cosine_rate_runs_from_base_to_five_percent():
    rates = [tbt.cosine_rate(1e-3, p) for p in np.linspace(0, 1, 11)]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(5e-5)
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))
    assert tbt.cosine_rate(1e-3, 2.0) == pytest.approx(5e-5)  # past the budget: floor


def test_parse_args_defaults_and_flags(tmp_path):
    parsed = tbt.parse_args(
        ["--data", str(tmp_path), "--out", "runs/x", "--resume", "--size", "64"]
    )
    assert parsed.resume and parsed.size == 64 and parsed.threads == 1
    assert parsed.freeze_stem and parsed.stage == "all"
    assert tbt.parse_args(["--data", "d", "--out", "o", "--no-freeze-stem"]).freeze_stem is False


def test_threshold_is_chosen_on_plain_and_stress_together():
    # plain: every image confident; stress: bones at 0.72, others at 0.62 for a wrong bone
    plain = (["Elbow", "Other"], np.array([[0.95, 0.02, 0.02, 0.01], [0.02, 0.02, 0.01, 0.95]]))
    stressed = (["Elbow", "Other"], np.array([[0.72, 0.1, 0.1, 0.08], [0.62, 0.1, 0.1, 0.18]]))
    report = tbt.evaluate_probabilities({"plain": plain, "stress": stressed})
    assert report["recognition_threshold"] == pytest.approx(0.65)  # between 0.62 and 0.72
    assert report["stress"]["other flagged not recognised"] == 1.0
    assert report["stress"]["Elbow recognised and right"] == 1.0
    assert "plain and stress" in report["threshold_note"]


def test_head_and_feature_model_split_the_network():
    model = tbt.build_model(32, "none", freeze_stem=True)
    features = tbt.feature_model(model)
    assert features.output_shape[1:] == (1, 1, 2048)
    kernel, bias = tbt.head_arrays(model)
    assert kernel.shape == (2048, 4) and bias.shape == (4,)
    frozen = [layer.name for layer in model.layers if not layer.trainable]
    assert "conv1_conv" in frozen and "conv2_block3_out" in frozen
    assert model.get_layer("conv3_block1_1_conv").trainable
    x = np.random.default_rng(0).normal(0, 50, (2, 32, 32, 3)).astype(np.float32)
    pooled = features.predict(x, verbose=0).mean(axis=(1, 2))
    logits = pooled @ kernel + bias
    manual = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.allclose(manual, model.predict(x, verbose=0), atol=1e-4)


def tiny_model(size: int, init: str, freeze_stem: bool, backbone_name: str = "resnet50"):
    """A small stand-in with the layer names `train` and the export rely on."""
    import keras

    inputs = keras.Input((size, size, 3))
    features = keras.layers.Conv2D(4, 3, strides=4, name=tbt.FEATURE_LAYERS[0])(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    return keras.Model(
        inputs, keras.layers.Dense(4, activation="softmax", name="bone_type")(pooled)
    )


def test_training_checkpoints_resumes_and_stops_on_time(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for index in range(8):
        paths.append(tmp_path / "images" / f"IMG{index:07d}.png")
        Image.fromarray(rng.integers(0, 255, (64, 48), dtype=np.uint8)).save(paths[-1])
    records = [
        Record(p, bone, bone.lower(), 0, "b0", p.name)
        for p, bone in zip(paths, ["Elbow", "Hand", "Shoulder", "Other"] * 2, strict=True)
    ]
    splits = {"train": records, "val": records[:4], "test": []}
    marks = {paths[3].name: [JointMark("elbow", 0.5, 0.5)]}
    opts = options(tmp_path, epochs=1, steps_per_epoch=1, batch=4, init="none", cache_side=64)
    state = tbt.train(opts, splits, marks, build=tiny_model)
    assert state["epochs_done"] == 1 and state["finished"]
    assert (opts.out / "checkpoint.weights.h5").is_file()
    resumed = options(
        tmp_path, epochs=3, steps_per_epoch=1, batch=4, init="none", cache_side=64, resume=True
    )
    resumed.max_minutes = 0.0  # the budget is already used up: one step, then stop
    state = tbt.train(resumed, splits, marks, build=tiny_model)
    assert state["epochs_done"] == 1 and not state["finished"]
    saved = json.loads((opts.out / "state.json").read_text())
    assert [h["epoch"] for h in saved["history"]] == [1, 2]
    assert saved["history"][1]["steps"] == 1


def test_probe_trains_the_head_alone_and_restores_what_trains():
    images = [np.random.default_rng(i).integers(0, 255, (64, 48), dtype=np.uint8) for i in range(4)]
    sources = tbt.training_sources(RECORDS, {})
    opts = tbt.Options(data=Path(), out=Path(), size=32, batch=4, probe_steps=3)
    model = tiny_model(32, "none", True)
    before = [w.copy() for w in model.get_weights()]
    trainable = [layer.trainable for layer in model.layers]
    probe = tbt.probe_head(model, images, sources, opts)
    after = model.get_weights()
    conv, head = model.get_layer(tbt.FEATURE_LAYERS[0]), model.get_layer("bone_type")
    assert all(np.array_equal(a, b) for a, b in zip(conv.get_weights(), before[:2], strict=True))
    assert not np.allclose(after[-2], before[-2])  # the head's kernel moved
    assert [layer.trainable for layer in model.layers] == trainable
    assert probe["steps"] == 3 and head.trainable and conv.trainable


def test_mobilenet_backbones_give_the_exported_feature_map():
    for name, channels in (("mobilenet_v1", 1024), ("mobilenet_v2", 1280)):
        model = tbt.build_model(64, "none", freeze_stem=True, backbone_name=name)
        assert tbt.feature_model(model).output_shape[1:] == (2, 2, channels)
        assert not model.get_layer("conv0").trainable


def test_export_writes_network_head_and_threshold(tmp_path):
    from PIL import Image

    from core import manifest as manifest_io

    rng = np.random.default_rng(1)
    records = []
    for index, bone in enumerate(["Elbow", "Hand", "Shoulder", "Other"] * 2):
        path = tmp_path / f"IMG{index:07d}.png"
        Image.fromarray(rng.integers(0, 255, (64, 48), dtype=np.uint8)).save(path)
        records.append(Record(path, bone, bone.lower(), 0, "b0", path.name))
    splits = {"train": records, "val": records[:4], "test": []}
    opts = options(tmp_path, size=32)
    report = {"recognition_threshold": 0.7, "threshold_note": "chosen on plain and stress"}
    state = {
        "minutes": 12.34,
        "options": tbt._jsonable(opts),
        "resumed_with": [{**tbt._jsonable(opts), "resume": True, "other_share": 0.5}],
    }
    out = tbt.export(opts, splits, report, state, model=tiny_model(32, "none", True))
    raw = manifest_io.load_raw(out)
    network = raw["networks"][tbt.NETWORK_NAME]
    assert network["input_size"] == 32 and (out / network["file"]).is_file()
    assert network["provenance"]["training_minutes"] == 12.3
    first, resumed = network["provenance"]["command"].split("; then ")
    assert first.startswith("python -m training.networks.train_bone_type --data ")
    assert "--size 32" in first
    assert "--resume" not in first and "--other-share" not in first
    assert "--resume" in resumed and "--other-share 0.5" in resumed
    head = raw["heads"]["bone_type"]
    assert head["network"] == tbt.NETWORK_NAME and head["pooling"] == "mean"
    assert head["classes"] == list(BONE_TYPE_CLASSES)
    assert head["provenance"]["command"] == network["provenance"]["command"]
    assert raw["recognition_threshold"] == 0.7
    assert "plain and stress" in raw["recognition_threshold_note"]


def test_other_share_sets_how_much_of_a_batch_is_other(tmp_path):
    cache = [np.full((40, 40), 128, np.uint8) for _ in RECORDS]
    sources = tbt.training_sources(RECORDS, MARKS)
    other = BONE_TYPE_CLASSES.index("Other")
    shares = []
    for share in (0.1, 0.8):
        opts = options(tmp_path, batch=400, other_share=share)
        _, y, _ = tbt.draw_batch(cache, sources, np.random.default_rng(0), opts)
        shares.append(np.mean(y == other))
    assert shares[0] == pytest.approx(0.1, abs=0.05) and shares[1] == pytest.approx(0.8, abs=0.06)


def test_confusable_share_sets_how_many_other_draws_come_from_confusable_regions(
    tmp_path, monkeypatch
):
    records = [*RECORDS, record("E.jpg", "wrist", "Other"), record("F.jpg", "chest", "Other")]
    cache = [np.full((40, 40), 128, np.uint8) for _ in records]
    sources = tbt.training_sources(records, {})
    drawn: list[str] = []

    def remember(image, source, rng, size, strength):
        drawn.append(source.region)
        return np.zeros((size, size, 3), np.float32), BONE_TYPE_CLASSES.index(source.bone)

    monkeypatch.setattr(tbt, "draw_example", remember)
    shares = {}
    for share in (0.0, 0.9):
        drawn.clear()
        opts = options(tmp_path, batch=600, other_share=1.0, confusable_share=share)
        tbt.draw_batch(cache, sources, np.random.default_rng(0), opts)
        shares[share] = np.mean([region in tbt.CONFUSABLE_REGIONS for region in drawn])
    # Other sources: full_arm, other, wrist, chest: half of them confusable when drawn as found.
    assert shares[0.0] == pytest.approx(0.5, abs=0.06)
    assert shares[0.9] == pytest.approx(0.9 + 0.1 * 0.5, abs=0.04)
