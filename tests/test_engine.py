"""The LiteRT engine: no TensorFlow at inference, routing between networks, CAM = Grad-CAM,
and every bad model file or manifest value refused with the clinician-readable model error."""

from __future__ import annotations

import math
import mmap
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import predictions
from core import engine, errors
from core.heads import Head, pool, sigmoid
from core.imaging import normalize, prepare_framed, read_xray
from core.manifest import read_manifest, sha256_file
from core.runtime import Network, release_mapped_pages
from tests.factories import edit_manifest, make_random_weights, tiny_network
from training.export.litert import convert

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def two_networks(tmp_path_factory) -> Path:
    """Bone type on a 32-px network, fracture heads on their own 48-px network."""
    return make_random_weights(tmp_path_factory.mktemp("two"), separate_fracture_size=48)


def test_prediction_does_not_import_tensorflow(tiny_weights, sample_png):
    script = (
        "import sys, predictions\n"
        f"result = predictions.analyze({str(sample_png)!r}, {str(tiny_weights)!r})\n"
        f"predictions.explain({str(sample_png)!r}, weights_dir={str(tiny_weights)!r})\n"
        "assert result.bone in ('Elbow', 'Hand', 'Shoulder')\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print('IMPORTED', heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "IMPORTED []" in done.stdout


def test_each_stage_reads_its_own_network(two_networks, sample_png):
    manifest = read_manifest(two_networks)
    assert {manifest.bone_type.network, manifest.fracture["Hand"].network} == {"shared", "fracture"}
    gray = read_xray(sample_png)
    result = predictions.analyze(sample_png, two_networks, bone="Hand")
    # The hand verdict equals the hand head applied to the 48-px fracture network by hand.
    fracture = Network(
        two_networks / manifest.networks["fracture"].file, manifest.networks["fracture"]
    )
    pixels, _ = prepare_framed(gray, 48)
    features = fracture.features(normalize(pixels))
    kernel = np.load(two_networks / "fracture_hand_head.npz")
    head = Head(kernel["kernel"].astype(np.float32), kernel["bias"].astype(np.float32))
    expected = float(sigmoid(head.logits(features))[0])
    assert result.fracture_probability == pytest.approx(expected, abs=1e-5)
    assert features.shape == (12, 12, 16)


def test_each_distinct_network_runs_once_per_image(two_networks, sample_png, monkeypatch):
    calls: list[int] = []
    original = Network.features

    def counting(self, pixels):
        calls.append(self.input_size)
        return original(self, pixels)

    monkeypatch.setattr(Network, "features", counting)
    predictions.analyze(sample_png, two_networks)
    assert sorted(calls) == [32, 48]


linux_only = pytest.mark.skipif(
    not Path("/proc/self/maps").is_file(), reason="reads /proc/self/maps (Linux)"
)


@linux_only
def test_a_network_predicts_the_same_after_its_model_file_pages_are_released(tiny_weights):
    manifest = read_manifest(tiny_weights)
    entry = manifest.networks[manifest.bone_type.network]
    path = tiny_weights / entry.file
    network = Network(path, entry)  # releases once while loading
    pixels = np.random.default_rng(0).random((entry.input_size, entry.input_size, 3), np.float32)
    before = network.features(pixels)
    assert release_mapped_pages(path) >= path.stat().st_size  # LiteRT keeps the file mapped
    assert np.array_equal(network.features(pixels), before)


@linux_only
def test_releasing_pages_reads_them_back_and_leaves_writable_mappings_alone(tmp_path):
    data = np.random.default_rng(1).bytes(3 * mmap.PAGESIZE)
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    with path.open("r+b") as handle:
        writable = mmap.mmap(handle.fileno(), 0)
        writable[:4] = b"edit"
        assert release_mapped_pages(path) == 0  # only the writable mapping exists
        assert writable[:4] == b"edit"
        readonly = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        assert readonly[:] == b"edit" + data[4:]
        assert release_mapped_pages(path) == len(data)
        assert readonly[:] == b"edit" + data[4:]  # paged back in from the file
        readonly.close()
        writable.close()


def test_a_map_head_on_another_network_gives_boxes_and_heatmap(two_networks, tmp_path, sample_png):
    folder = tmp_path / "mapped"
    shutil.copytree(two_networks, folder)

    def split_hand(raw):
        hand = raw["heads"]["fracture_hand"]
        raw["heads"]["fracture_hand_map"] = {**hand, "box_threshold": 0.01}
        hand.update(network="shared", map_head="fracture_hand_map")

    edit_manifest(folder, split_hand)
    engine.clear_cache()
    result = predictions.analyze(sample_png, folder, bone="Hand")
    manifest = read_manifest(folder)
    shared = Network(folder / manifest.networks["shared"].file, manifest.networks["shared"])
    pixels, _ = prepare_framed(read_xray(sample_png), 32)
    arrays = np.load(folder / "fracture_hand_head.npz")
    head = Head(arrays["kernel"].astype(np.float32), arrays["bias"].astype(np.float32))
    expected = float(sigmoid(head.logits(shared.features(normalize(pixels))))[0])
    assert result.fracture_probability == pytest.approx(expected, abs=1e-5)  # from the shared net
    assert result.boxes and all(0 <= b.x0 < b.x1 <= 96 for b in result.boxes)
    assert predictions.explain(sample_png, "Hand", folder).heat.shape == (12, 12)  # 48-px map
    edit_manifest(folder, lambda raw: raw["heads"]["fracture_hand"].update(map_head="nowhere"))
    with pytest.raises(errors.ManifestError, match="unknown map head"):
        read_manifest(folder)


def test_a_verdict_can_add_the_logits_of_heads_on_other_networks(
    two_networks, tmp_path, sample_png
):
    folder = tmp_path / "ensemble"
    shutil.copytree(two_networks, folder)

    def add_shared_term(raw):
        hand = raw["heads"]["fracture_hand"]
        raw["heads"]["fracture_hand_coarse"] = {
            **raw["heads"]["fracture_hand"],
            "network": "shared",
        }
        hand["plus_heads"] = ["fracture_hand_coarse"]

    edit_manifest(folder, add_shared_term)
    engine.clear_cache()
    manifest = read_manifest(folder)
    assert [h.network for h in manifest.verdict_of("Hand")] == ["fracture", "shared"]
    gray = read_xray(sample_png)
    arrays = np.load(folder / "fracture_hand_head.npz")
    head = Head(arrays["kernel"].astype(np.float32), arrays["bias"].astype(np.float32))
    logits = 0.0
    for name, size in (("fracture", 48), ("shared", 32)):
        network = Network(folder / manifest.networks[name].file, manifest.networks[name])
        logits += head.logits(network.features(normalize(prepare_framed(gray, size)[0])))[0]
    result = predictions.analyze(sample_png, folder, bone="Hand")
    assert result.fracture_probability == pytest.approx(float(sigmoid(logits)), abs=1e-5)
    alone = predictions.analyze(sample_png, two_networks, bone="Hand").fracture_probability
    assert result.fracture_probability != pytest.approx(alone, abs=1e-6)
    for bad in (["nowhere"], ["fracture_hand"], "fracture_hand_coarse", ["bone_type"]):
        edit_manifest(
            folder, lambda raw, bad=bad: raw["heads"]["fracture_hand"].update(plus_heads=bad)
        )
        with pytest.raises(errors.ManifestError):
            read_manifest(folder)


def test_class_activation_map_equals_gradcam_of_the_keras_model(tmp_path):
    import keras
    import tensorflow as tf

    features_model = tiny_network(40, seed=3)
    dense = keras.layers.Dense(1)
    pooled = keras.layers.GlobalAveragePooling2D()(features_model.output)
    full = keras.Model(features_model.input, [features_model.output, dense(pooled)])
    image = np.random.default_rng(0).uniform(-120, 130, (1, 40, 40, 3)).astype(np.float32)
    with tf.GradientTape() as tape:
        feature_map, logit = full(image)
        tape.watch(feature_map)
        target = dense(tf.reduce_mean(feature_map, axis=[1, 2]))[:, 0]
    gradients = tape.gradient(target, feature_map)
    weights = tf.reduce_mean(gradients, axis=[1, 2], keepdims=True)
    gradcam = tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1))[0].numpy()
    gradcam = gradcam / gradcam.max()
    kernel, bias = dense.get_weights()
    cam = Head(kernel, bias).activation_map(feature_map[0].numpy())
    assert cam.shape == gradcam.shape == (10, 10)
    np.testing.assert_allclose(cam, gradcam, atol=1e-5)
    assert float(logit[0, 0]) == pytest.approx(
        float(Head(kernel, bias).logits(feature_map[0].numpy())[0]), abs=1e-4
    )


def test_pooling_lies_between_mean_and_max():
    cells = np.array([[[0.0], [1.0]], [[2.0], [8.0]]])
    mean, top = pool(cells, "mean")[0], cells.max()
    assert mean == pytest.approx(2.75)
    gentle, sharp = pool(cells, "lse", 0.01)[0], pool(cells, "lse", 50.0)[0]
    assert mean < gentle < sharp < top
    assert gentle == pytest.approx(mean, abs=0.1) and sharp == pytest.approx(top, abs=0.05)
    expected = math.log(np.mean(np.exp(2.0 * cells))) / 2.0
    assert pool(cells, "lse", 2.0)[0] == pytest.approx(expected)


# ----------------------------------------------------------------------------- bad model files


def replace_model_file(folder: Path, name: str, data: bytes) -> None:
    """Overwrite a model file and give the manifest its new checksum (so only content is bad)."""
    (folder / name).write_bytes(data)
    digest = sha256_file(folder / name)

    def update(raw):
        for entry in [*raw["networks"].values(), *raw["heads"].values()]:
            if entry["file"] == name:
                entry["sha256"] = digest

    edit_manifest(folder, update)


def npz_bytes(folder: Path, **arrays) -> bytes:
    np.savez(folder / "made.npz", **arrays)
    return (folder / "made.npz").read_bytes()


def test_missing_weights_folder(tmp_path, sample_png):
    with pytest.raises(errors.WeightsFolderMissingError, match="is missing"):
        predictions.analyze(sample_png, tmp_path / "nowhere")


def test_missing_manifest(tmp_path, sample_png):
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.ManifestError):
        predictions.analyze(sample_png, tmp_path / "empty")


@pytest.mark.parametrize("name", ["fracture_hand_head.npz", "shared.int8.tflite"])
def test_missing_model_file(weights_copy, sample_png, name):
    (weights_copy / name).unlink()
    with pytest.raises(errors.ModelFileMissingError, match=name):
        predictions.analyze(sample_png, weights_copy)


@pytest.mark.parametrize("name", ["bone_type_head.npz", "shared.int8.tflite"])
def test_checksum_mismatch(weights_copy, sample_png, name):
    with (weights_copy / name).open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(errors.ChecksumMismatchError, match="checksum"):
        predictions.analyze(sample_png, weights_copy)


def test_network_file_that_is_not_a_model(weights_copy, sample_png):
    replace_model_file(weights_copy, "shared.int8.tflite", b"PK\x03\x04 a zip, not a network" * 50)
    with pytest.raises(errors.InvalidModelFileError, match="not a LiteRT model"):
        predictions.analyze(sample_png, weights_copy)


def test_truncated_network_whose_checksum_matches(weights_copy, sample_png):
    data = (weights_copy / "shared.int8.tflite").read_bytes()
    replace_model_file(weights_copy, "shared.int8.tflite", data[: len(data) // 2])
    with pytest.raises(errors.InvalidModelFileError):
        predictions.analyze(sample_png, weights_copy)


def test_network_with_the_wrong_input_shape(weights_copy, sample_png):
    replace_model_file(weights_copy, "shared.int8.tflite", convert(tiny_network(24), None))
    with pytest.raises(errors.InvalidModelFileError, match=r"its input is \[\(1, 24, 24, 3\)\]"):
        predictions.analyze(sample_png, weights_copy)


def test_network_with_two_outputs(weights_copy, sample_png):
    import keras

    single = tiny_network(32)
    double = keras.Model(single.input, [single.output, single.layers[-2].output])
    replace_model_file(weights_copy, "shared.int8.tflite", convert(double, None))
    with pytest.raises(errors.InvalidModelFileError, match="2 outputs, expected 1"):
        predictions.analyze(sample_png, weights_copy)


def test_head_that_is_not_a_model_file(weights_copy, sample_png):
    replace_model_file(weights_copy, "fracture_hand_head.npz", b"not a model at all" * 100)
    with pytest.raises(errors.InvalidModelFileError, match="not a model file"):
        predictions.analyze(sample_png, weights_copy)


def test_head_of_the_wrong_shape(weights_copy, sample_png, tmp_path):
    data = npz_bytes(tmp_path, kernel=np.zeros((10, 1)), bias=np.zeros(1))
    replace_model_file(weights_copy, "fracture_elbow_head.npz", data)
    with pytest.raises(errors.InvalidModelFileError, match="not a head"):
        predictions.analyze(sample_png, weights_copy)


def test_head_with_invalid_numbers(weights_copy, sample_png, tmp_path):
    data = npz_bytes(tmp_path, kernel=np.full((16, 1), np.nan, np.float32), bias=np.zeros(1))
    replace_model_file(weights_copy, "fracture_hand_head.npz", data)
    with pytest.raises(errors.InvalidModelFileError, match="invalid numbers"):
        predictions.analyze(sample_png, weights_copy)


def test_pickled_object_arrays_are_never_loaded(weights_copy, sample_png, tmp_path):
    data = npz_bytes(tmp_path, kernel=np.array([{"a": 1}], dtype=object), bias=np.zeros(1))
    replace_model_file(weights_copy, "bone_type_head.npz", data)
    with pytest.raises(errors.InvalidModelFileError):
        predictions.analyze(sample_png, weights_copy)


BAD_MANIFEST_VALUES = {
    "threshold_nan": lambda r: r["heads"]["fracture_hand"].update(threshold=float("nan")),
    "threshold_two": lambda r: r["heads"]["fracture_hand"].update(threshold=2.0),
    "threshold_zero": lambda r: r["heads"]["fracture_elbow"].update(threshold=0.0),
    "box_threshold_nan": lambda r: r["heads"]["fracture_hand"].update(box_threshold=float("nan")),
    "recognition_nan": lambda r: r.update(recognition_threshold=float("nan")),
    "input_size_zero": lambda r: r["networks"]["shared"].update(input_size=0),
    "input_size_negative": lambda r: r["networks"]["shared"].update(input_size=-32),
    "input_size_text": lambda r: r["networks"]["shared"].update(input_size="32"),
    "feature_shape_bad": lambda r: r["networks"]["shared"].update(feature_shape=[8, 0, 16]),
    "quantization_unknown": lambda r: r["networks"]["shared"].update(quantization="int4"),
    "pooling_unknown": lambda r: r["heads"]["bone_type"].update(pooling="median"),
    "pooling_r_negative": lambda r: r["heads"]["bone_type"].update(pooling="lse", pooling_r=-1),
    "path_traversal": lambda r: r["heads"]["fracture_hand"].update(file="../../../etc/passwd"),
    "path_absolute": lambda r: r["networks"]["shared"].update(file="/etc/passwd"),
    "path_sibling_folder": lambda r: r["heads"]["fracture_hand"].update(
        file="../other/fracture_elbow_head.npz"
    ),
    "unknown_network": lambda r: r["heads"]["fracture_hand"].update(network="elsewhere"),
    "missing_head": lambda r: r["heads"].pop("fracture_shoulder"),
    "wrong_classes": lambda r: r["heads"]["bone_type"].update(classes=["Knee", "Other"]),
    "old_format": lambda r: r.update(format_version=1),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFEST_VALUES))
def test_bad_manifest_values_are_refused(case, weights_copy, sample_png):
    edit_manifest(weights_copy, BAD_MANIFEST_VALUES[case])
    with pytest.raises(errors.ManifestError) as raised:
        predictions.analyze(sample_png, weights_copy)
    assert "Get the 'weights' folder from the project again" in str(raised.value)


def test_feature_shape_must_match_the_network(weights_copy, sample_png):
    edit_manifest(weights_copy, lambda r: r["networks"]["shared"].update(feature_shape=[4, 4, 16]))
    with pytest.raises(errors.InvalidModelFileError, match="its output is"):
        predictions.analyze(sample_png, weights_copy)


def test_the_engine_is_loaded_once_and_again_when_the_manifest_changes(weights_copy, sample_png):
    engine.clear_cache()
    first = engine.get_engine(weights_copy)
    assert engine.get_engine(weights_copy) is first  # no re-reading per prediction
    edit_manifest(weights_copy, lambda raw: raw.update(recognition_threshold=0.999))
    second = engine.get_engine(weights_copy)
    assert second is not first and second.manifest.recognition_threshold == 0.999
    assert predictions.analyze(sample_png, weights_copy).recognised is False
    assert engine.get_engine(weights_copy) is second


def add_constant_head(folder: Path, key: str, bias: np.ndarray, threshold: float) -> None:
    """A head `key` on the bone-type network whose logits are always `bias` (a zero kernel)."""
    from core.manifest import register_head_entry
    from core.models import save_head

    manifest = read_manifest(folder)
    network = manifest.bone_type.network
    channels = manifest.networks[network].feature_shape[-1]
    path = folder / f"{key}_head.npz"
    save_head(np.zeros((channels, len(bias)), np.float32), bias, path)
    register_head_entry(folder, key, path, network, threshold=threshold)
    engine.clear_cache()


def add_orientation_head(folder: Path, turns: int, threshold: float) -> None:
    """An orientation head on the bone-type network that always says `turns` (p about 0.98)."""
    bias = np.full(4, -2.0, np.float32)
    bias[turns] = 2.0
    add_constant_head(folder, "orientation", bias, threshold)


def test_an_image_the_orientation_head_finds_turned_is_turned_back_for_the_fracture_networks(
    two_networks, tmp_path, sample_png
):
    gray = read_xray(sample_png)
    plain = engine.Engine(read_manifest(two_networks)).run(gray)
    folder = tmp_path / "oriented"
    shutil.copytree(two_networks, folder)
    add_orientation_head(folder, turns=1, threshold=0.9)
    turned = np.ascontiguousarray(np.rot90(gray, 1))  # stored a quarter turn from training
    raw = engine.Engine(read_manifest(folder)).run(turned)
    assert raw.quarter_turns == 1
    for bone in ("Elbow", "Hand", "Shoulder"):  # the fracture network saw the original image
        assert raw.fracture_probabilities[bone] == pytest.approx(
            plain.fracture_probabilities[bone], abs=1e-6
        )
        # ... and its map is turned with the image, framed on the image as it is
        np.testing.assert_allclose(
            raw.fracture_maps[bone], np.rot90(plain.fracture_maps[bone], 1), atol=1e-6
        )
        assert raw.fracture_frames[bone] == prepare_framed(turned, 48)[1]
    without = engine.Engine(read_manifest(two_networks)).run(turned)
    assert raw.bone_probabilities == without.bone_probabilities  # bone type: the image as is
    assert raw.fracture_probabilities["Hand"] != pytest.approx(
        without.fracture_probabilities["Hand"], abs=1e-6
    )
    result = predictions.analyze(sample_png, folder, bone="Hand")
    assert any("turned a quarter turn anticlockwise" in note for note in result.notes)


def test_the_orientation_head_leaves_the_image_alone_when_unsure_or_upright(
    two_networks, tmp_path, sample_png
):
    gray = read_xray(sample_png)
    plain = engine.Engine(read_manifest(two_networks)).run(gray)
    folder = tmp_path / "oriented"
    shutil.copytree(two_networks, folder)
    for turns, threshold in ((2, 0.99), (0, 0.5)):  # unsure of a turn; sure it is as trained
        add_orientation_head(folder, turns, threshold)
        raw = engine.Engine(read_manifest(folder)).run(gray)
        assert raw.quarter_turns == 0
        assert raw.fracture_probabilities == plain.fracture_probabilities
    assert not any("turned" in n for n in predictions.analyze(sample_png, folder).notes)


def test_an_orientation_head_needs_its_classes_and_least_confidence(two_networks, tmp_path):
    folder = tmp_path / "oriented"
    shutil.copytree(two_networks, folder)
    add_orientation_head(folder, 1, 0.5)
    assert read_manifest(folder).orientation.classes[1] == "turned 90"
    for change in (
        lambda raw: raw["heads"]["orientation"].pop("threshold"),
        lambda raw: raw["heads"]["orientation"].update(classes=["a", "b", "c", "d"]),
    ):
        shutil.rmtree(folder)
        shutil.copytree(two_networks, folder)
        add_orientation_head(folder, 1, 0.5)
        edit_manifest(folder, change)
        with pytest.raises(errors.ManifestError):
            read_manifest(folder)


def add_polarity_head(folder: Path, logit: float, threshold: float) -> None:
    """A polarity head on the bone-type network that always gives `logit` for "inverted"."""
    add_constant_head(folder, "polarity", np.float32([logit]), threshold)


def test_an_image_the_polarity_head_finds_inverted_is_reversed_back_for_the_fracture_networks(
    two_networks, tmp_path, sample_png
):
    gray = read_xray(sample_png)
    plain = engine.Engine(read_manifest(two_networks)).run(gray)
    inverted = 1.0 - gray
    without = engine.Engine(read_manifest(two_networks)).run(inverted)
    folder = tmp_path / "polarity"
    shutil.copytree(two_networks, folder)
    add_polarity_head(folder, logit=4.0, threshold=0.9)
    raw = engine.Engine(read_manifest(folder)).run(inverted)
    assert raw.inverted and raw.quarter_turns == 0
    assert raw.bone_probabilities == without.bone_probabilities  # bone type: the image as is
    for bone in ("Elbow", "Hand", "Shoulder"):  # the fracture network saw the original image
        assert raw.fracture_probabilities[bone] == pytest.approx(
            plain.fracture_probabilities[bone], abs=1e-6
        )
        np.testing.assert_allclose(raw.fracture_maps[bone], plain.fracture_maps[bone], atol=1e-6)
    assert raw.fracture_probabilities["Hand"] != pytest.approx(
        without.fracture_probabilities["Hand"], abs=1e-6
    )
    result = predictions.analyze(sample_png, folder, bone="Hand")
    assert any("grey levels look reversed" in note for note in result.notes)


def test_the_polarity_head_turns_and_reverses_together_and_holds_back_when_unsure(
    two_networks, tmp_path, sample_png
):
    gray = read_xray(sample_png)
    plain = engine.Engine(read_manifest(two_networks)).run(gray)
    folder = tmp_path / "both"
    shutil.copytree(two_networks, folder)
    add_orientation_head(folder, turns=1, threshold=0.5)
    add_polarity_head(folder, logit=4.0, threshold=0.5)
    changed = np.ascontiguousarray(np.rot90(1.0 - gray, 1))
    raw = engine.Engine(read_manifest(folder)).run(changed)
    assert raw.inverted and raw.quarter_turns == 1
    assert raw.fracture_probabilities["Hand"] == pytest.approx(
        plain.fracture_probabilities["Hand"], abs=1e-6
    )
    assert raw.fracture_frames["Hand"] == prepare_framed(changed, 48)[1]
    add_polarity_head(folder, logit=1.0, threshold=0.9)  # p 0.73: not sure enough
    assert not engine.Engine(read_manifest(folder)).run(changed).inverted
    edit_manifest(folder, lambda raw: raw["heads"]["polarity"].pop("threshold"))
    with pytest.raises(errors.ManifestError):
        read_manifest(folder)


def test_one_network_for_every_stage_is_run_again_on_the_turned_back_image(tmp_path, sample_png):
    single = make_random_weights(tmp_path / "single")  # bone type and fracture on `shared`
    gray = read_xray(sample_png)
    turned = np.ascontiguousarray(np.rot90(gray, 3))
    plain = engine.Engine(read_manifest(single)).run(gray)
    without = engine.Engine(read_manifest(single)).run(turned)
    add_orientation_head(single, turns=3, threshold=0.5)
    raw = engine.Engine(read_manifest(single)).run(turned)
    assert raw.quarter_turns == 3
    assert raw.bone_probabilities == without.bone_probabilities  # bone type: as it is
    assert raw.fracture_probabilities["Hand"] == pytest.approx(
        plain.fracture_probabilities["Hand"], abs=1e-6
    )  # fracture: turned back
