"""The frozen-feature baseline: its five views, their pooling, its fits, and Google's file read at
the map before its own pooling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.data.datasets import Record
from training.report import frozen_baseline as fb

PRETRAINED_V1 = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "pretrained"
    / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
)


def test_corner_crops_are_the_four_corners():
    framed = np.arange(10 * 10 * 3, dtype=np.float32).reshape(10, 10, 3)
    crops = fb.corner_crops(framed, 6)
    assert [c.shape for c in crops] == [(6, 6, 3)] * 4
    assert crops[0][0, 0, 0] == framed[0, 0, 0] and crops[3][-1, -1, 0] == framed[-1, -1, 0]
    assert crops[1][0, -1, 0] == framed[0, -1, 0] and crops[2][-1, 0, 0] == framed[-1, 0, 0]


def test_mean_and_max_average_the_means_and_take_the_largest_cell():
    a = np.zeros((2, 2, 3), np.float32)
    b = np.zeros((2, 2, 3), np.float32)
    b[1, 1] = [4.0, 8.0, 0.0]
    pooled = fb.mean_and_max([a, b])
    assert np.allclose(pooled, [0.5, 1.0, 0.0, 4.0, 8.0, 0.0])


class CountingNetwork:
    """A stand-in that records the views it is shown and answers with their mean brightness."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def feature_map(self, pixels: np.ndarray) -> np.ndarray:
        self.shapes.append(pixels.shape)
        return np.full((7, 7, 2), pixels.mean(), np.float32)


def test_view_features_show_the_whole_image_and_four_crops():
    network = CountingNetwork()
    gray = np.random.default_rng(0).random((300, 200)).astype(np.float32)
    features = fb.view_features(network, gray)
    assert network.shapes == [(224, 224, 3)] * 5
    assert features.shape == (8,)  # whole mean, whole max, crops mean, crops max: 2 channels each


def records_and_features(n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    bones = np.array(["Hand", "Elbow", "Shoulder", "Other"])[rng.integers(0, 4, n)]
    records = [
        Record(Path(f"IMG{i:07d}.jpg"), str(b), str(b).lower(), int(y), f"block{i // 4}", str(i))
        for i, (y, b) in enumerate(zip(labels, bones, strict=True))
    ]
    signal = np.c_[labels + rng.normal(0, 0.5, n), rng.normal(0, 1, (n, 3))]
    noise = rng.normal(0, 1, (n, 4))
    split = np.array(["train"] * (n // 2) + ["val"] * (n // 4) + ["test"] * (n - n // 2 - n // 4))
    return records, signal, noise, split


def test_measure_finds_a_signal_and_not_noise():
    records, signal, noise, split = records_and_features()
    found = fb.measure(signal, records, split, strength=0.01)
    chance = fb.measure(noise, records, split, strength=0.01)
    for kind in ("grouped_cv_train_val", "train_to_val_and_test"):
        assert found[kind]["all regions"]["auroc"] > 0.8
        assert abs(chance[kind]["all regions"]["auroc"] - 0.5) < 0.2
    assert found["grouped_cv_train_val"]["all regions"]["n"] == 150
    assert found["train_to_val_and_test"]["all regions"]["n"] == 100


@pytest.mark.skipif(not PRETRAINED_V1.is_file(), reason="Google's MobileNet v1 file is not here")
def test_the_map_read_is_the_one_the_file_pools():
    from ai_edge_litert.interpreter import Interpreter

    network = fb.FrozenMobileNet(PRETRAINED_V1)
    reference = Interpreter(model_path=str(PRETRAINED_V1))
    reference.allocate_tensors()
    output = reference.get_output_details()[0]
    scale, zero = output["quantization"]
    rng = np.random.default_rng(0)
    for _ in range(3):
        pixels = rng.integers(0, 256, (224, 224, 3)).astype(np.float32)
        reference.set_tensor(
            reference.get_input_details()[0]["index"], pixels.astype(np.uint8)[None]
        )
        reference.invoke()
        pooled = (
            reference.get_tensor(output["index"]).reshape(-1).astype(np.float32) - zero
        ) * scale
        mine = network.feature_map(pixels)
        assert mine.shape == (7, 7, 1024)
        assert np.allclose(mine.mean(axis=(0, 1)), pooled, atol=2 * scale)
