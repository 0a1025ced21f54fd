"""MobileNet v1 from a quantised TFLite file: dequantisation, the Keras rebuild's parity with the
file, the fracture trunks by backbone name, and the ImageNet ResNet50 path through a stand-in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.imaging import normalize, prepare, read_xray
from tests.conftest import ROOT
from training.networks import backbones, mobilenet

SAMPLES = sorted((ROOT / "test").rglob("*.jpg"))
SHARED = ROOT.parent / "shared"
BLOCKS = 8  # a shorter MobileNet converts in seconds; the whole one takes minutes
PRETRAINED_V1 = SHARED / "pretrained" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


def pooled_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each image's mean-pooled features."""
    a, b = a.mean(axis=(1, 2)), b.mean(axis=(1, 2))
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def sample_inputs(size: int) -> np.ndarray:
    """The sample X-rays in `test/` as model inputs."""
    return np.stack([normalize(prepare(read_xray(p), size)) for p in SAMPLES]).astype(np.float32)


def test_dequantise_per_tensor_and_per_channel():
    values = np.array([[0, 128, 255], [10, 20, 30]], dtype=np.uint8)
    per_tensor = {"scales": [0.5], "zero_points": [128], "quantized_dimension": 0}
    assert np.allclose(mobilenet.dequantise(values, per_tensor), (values - 128.0) * 0.5)
    per_channel = {"scales": [1.0, 0.1], "zero_points": [0, 0], "quantized_dimension": 0}
    int_values = np.array([[1, -2, 3], [4, 5, -6]], dtype=np.int8)
    assert np.allclose(
        mobilenet.dequantise(int_values, per_channel), int_values * np.array([[1.0], [0.1]])
    )
    no_scales = {"scales": [], "zero_points": [], "quantized_dimension": 0}
    assert mobilenet.dequantise(np.float32([1.5]), no_scales).tolist() == [1.5]


def test_caffe_input_becomes_mobilenet_input():
    pixels = np.float32([[[0.0, 0.0, 0.0], [128.0, 128.0, 128.0], [255.0, 255.0, 255.0]]])
    converted = np.asarray(mobilenet.caffe_to_mobilenet(normalize(pixels)))
    assert np.allclose(converted[0, :, 0], [-1.0, 0.0, 127 / 128], atol=1e-5)


@pytest.fixture(scope="module")
def quantised_file(tmp_path_factory) -> Path:
    """A MobileNet v1 (first 8 blocks) with random weights, written as a LiteRT
    file with int8 per-channel weights by the project's own converter."""
    from training.export.litert import convert

    model = mobilenet.build_mobilenet_v1(None, 96, blocks=BLOCKS)
    path = tmp_path_factory.mktemp("mobilenet") / "mobilenet_v1.tflite"
    path.write_bytes(convert(model, "dynamic-int8"))
    return path


def test_keras_rebuild_reproduces_a_quantised_file(quantised_file, monkeypatch):
    from ai_edge_litert.interpreter import Interpreter

    monkeypatch.setattr(mobilenet, "is_project_export", lambda path: False)  # a stand-in
    rebuilt = mobilenet.build_mobilenet_v1(quantised_file, 96, blocks=BLOCKS)
    interpreter = Interpreter(model_path=str(quantised_file))
    interpreter.allocate_tensors()
    images = sample_inputs(96)
    reference = []
    for image in images:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
        interpreter.invoke()
        reference.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0])
    ours = np.asarray(rebuilt(images))
    assert ours.shape == np.stack(reference).shape == (len(SAMPLES), 6, 6, 512)
    assert np.abs(np.stack(reference)).max() > 0  # the features are not all zero
    assert pooled_cosines(np.stack(reference), ours).min() >= 0.99
    random = np.asarray(mobilenet.build_mobilenet_v1(None, 96, blocks=BLOCKS)(images))
    assert pooled_cosines(np.stack(reference), random).min() < 0.99  # the check can fail


def test_a_file_with_too_few_convolutions_is_refused(tmp_path, monkeypatch):
    from training.export.litert import convert

    shallow = tmp_path / "two_blocks.tflite"
    shallow.write_bytes(convert(mobilenet.build_mobilenet_v1(None, 64, blocks=2), "float32"))
    monkeypatch.setattr(mobilenet, "is_project_export", lambda path: False)  # a stand-in
    with pytest.raises(ValueError, match="has 5 convolutions, the network 27"):
        mobilenet.build_mobilenet_v1(shallow, 64)
    two_blocks = mobilenet.build_mobilenet_v1(shallow, 64, blocks=2)
    assert two_blocks.output_shape == (None, 16, 16, 128)


@pytest.mark.parametrize("variant", ["float32", "dynamic-int8"])
def test_a_network_this_project_exported_is_refused_as_a_start(tmp_path, variant):
    from training.export.litert import convert

    network = mobilenet.build_mobilenet_v1(None, 64, blocks=2)
    exported = tmp_path / f"exported.{variant}.tflite"
    exported.write_bytes(convert(network, variant))
    with pytest.raises(ValueError, match="a network this project exported"):
        mobilenet.build_mobilenet_v1(exported, 64, blocks=2)
    # the reason: the converter folded the input layer's 1/128 into the first kernel
    first = mobilenet.tflite_conv_weights(exported)[0].kernel
    assert np.allclose(first * 128, network.get_layer("conv0").get_weights()[0], atol=1e-2)


@pytest.mark.skipif(not PRETRAINED_V1.is_file(), reason="../shared/pretrained is not here")
def test_rebuild_matches_googles_mobilenet_on_real_xrays():
    """The issue's check: cosine >= 0.99 on the pooled features of 20 real X-rays."""
    from ai_edge_litert.interpreter import Interpreter

    images_dir = SHARED / "data" / "fracatlas" / "images"
    paths = (sorted(images_dir.glob("*.jpg"))[::150] + SAMPLES)[:20]
    assert len(paths) == 20
    interpreter = Interpreter(model_path=str(PRETRAINED_V1))
    interpreter.allocate_tensors()
    output = interpreter.get_output_details()[0]
    scale, zero = (
        output["quantization_parameters"]["scales"][0],
        output["quantization_parameters"]["zero_points"][0],
    )
    rebuilt = mobilenet.build_mobilenet_v1(PRETRAINED_V1, 224)
    cosines = []
    for path in paths:
        pixels = np.round(prepare(read_xray(path), 224))
        interpreter.set_tensor(
            interpreter.get_input_details()[0]["index"], pixels[None].astype(np.uint8)
        )
        interpreter.invoke()
        reference = (interpreter.get_tensor(output["index"]).astype(np.float32) - zero) * scale
        ours = np.asarray(rebuilt(normalize(pixels)[None].astype(np.float32)))
        cosines.append(pooled_cosines(reference.reshape(1, 1, 1, -1), ours)[0])
    assert min(cosines) >= 0.99


def test_mobilenet_trunk_is_atrous_and_fully_convolutional():
    trunk = backbones.build_trunk("mobilenet_v1", "none")
    for size in (64, 96):
        out = trunk(np.zeros((1, size, size, 3), np.float32))
        assert out.shape == (1, size // 16, size // 16, 1024)
    assert backbones.trunk_stride("mobilenet_v1", "pw13_relu") == 16
    assert not trunk.get_layer("conv0").trainable and trunk.get_layer("pw13").trainable


def test_imagenet_resnet50_goes_through_the_download_seam(monkeypatch):
    """`--init imagenet` (the original design's recipe) asks Keras for its published weights; a
    stand-in loader takes the download's place here, as this machine cannot download."""
    import keras

    calls = []

    def stand_in(**kwargs):
        calls.append(kwargs)
        model = keras.applications.ResNet50(weights=None, **kwargs)
        kernel = model.get_layer("conv1_conv").kernel
        kernel.assign(np.full(kernel.shape, 0.25, np.float32))
        return model

    monkeypatch.setattr(backbones, "imagenet_resnet50", stand_in)
    trunk = backbones.build_trunk("resnet50", "imagenet")
    assert calls and calls[0]["include_top"] is False
    assert np.all(trunk.get_layer("conv1_conv").get_weights()[0] == 0.25)
    from training.networks.models import build_backbone

    full = build_backbone(64, "imagenet")
    assert len(calls) == 2 and np.all(full.get_layer("conv1_conv").get_weights()[0] == 0.25)
