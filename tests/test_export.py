"""Export choices: int8 is kept per network only where it earns it on the test records."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import predictions
from core import engine
from core.manifest import read_manifest
from tests.factories import make_random_weights, write_image, xray_like
from training.data.datasets import Record
from training.export import litert as export


@pytest.fixture(scope="module")
def two_networks(tmp_path_factory):
    return make_random_weights(tmp_path_factory.mktemp("two"), separate_fracture_size=48)


@pytest.fixture()
def records(tmp_path):
    return [
        Record(
            path=write_image(tmp_path / f"{i}.png", xray_like(seed=i)),
            bone="Hand",
            region="hand",
            label=i % 2,
            patient=f"p{i}",
            study=f"s{i}",
        )
        for i in range(8)
    ]


def test_quantization_is_chosen_per_network_by_the_rule(
    two_networks, records, tmp_path, monkeypatch
):
    weights = tmp_path / "weights"
    shutil.copytree(two_networks, weights)
    manifest = read_manifest(weights)
    for entry in manifest.networks.values():  # every network is exported in three precisions
        assert set(entry.details["variants"]) == {"float32", "dynamic-int8", "int8"}
        assert (weights / entry.details["variants"]["dynamic-int8"]["file"]).is_file()
    choice = export.choose(weights, records)
    assert set(choice["chosen"]) == {"fracture", "shared"}
    manifest = read_manifest(weights)
    for name, quantization in choice["chosen"].items():
        entry = manifest.networks[name]
        assert entry.quantization == quantization
        assert entry.file == f"{name}.{quantization}.tflite"
        if quantization != "float32":
            report = entry.details["parity"]["test_split"][quantization]
            assert report["earns_its_place"]
            assert report["bone_type_agreement"] >= export.INT8_MIN_AGREEMENT

    monkeypatch.setattr(export, "INT8_MIN_AGREEMENT", 1.01)  # no variant can earn it now
    choice = export.choose(weights, records)
    assert choice["chosen"] == {"fracture": "float32", "shared": "float32"}
    manifest = read_manifest(weights)
    assert {entry.quantization for entry in manifest.networks.values()} == {"float32"}
    assert all(entry.file.endswith(".float32.tflite") for entry in manifest.networks.values())
    for entry in manifest.networks.values():  # both quantized variants were tried and refused
        tried = entry.details["parity"]["test_split"]
        assert set(tried) == {"int8", "dynamic-int8"}
        assert not any(report["earns_its_place"] for report in tried.values())
    engine.clear_cache()
    assert predictions.analyze(records[0].path, weights).bone in ("Elbow", "Hand", "Shoulder")


def fake_speed(monkeypatch, **milliseconds: float) -> None:
    """Give each variant a fixed run time (keyword names: float32, int8, dynamic_int8), so the
    choice does not depend on how busy the machine is."""
    times = {key.replace("_", "-"): value for key, value in milliseconds.items()}
    monkeypatch.setattr(
        export, "latency_ms", lambda weights, name, quantization: times[quantization]
    )


def test_dynamic_int8_is_kept_when_int8_alone_fails(two_networks, records, tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    shutil.copytree(two_networks, weights)
    fake_speed(monkeypatch, float32=10.0, int8=5.0, dynamic_int8=8.0)
    real_compare = export.compare
    tried: list[dict[str, str]] = []
    real_analyse = export.analyse_with

    def recording_analyse(folder, records_, quantized, keep=()):
        tried.append(dict(quantized))
        return real_analyse(folder, records_, quantized, keep)

    def rule(reference, candidate, records_):
        report = real_compare(reference, candidate, records_)
        report["earns_its_place"] = tried[-1].get("shared") != "int8"
        return report

    monkeypatch.setattr(export, "analyse_with", recording_analyse)
    monkeypatch.setattr(export, "compare", rule)
    choice = export.choose(weights, records)
    assert choice["chosen"]["shared"] == "dynamic-int8"
    assert {"shared": "int8"} in tried and {"shared": "dynamic-int8"} in tried
    entry = read_manifest(weights).networks["shared"]
    assert entry.quantization == "dynamic-int8" and entry.file == "shared.dynamic-int8.tflite"
    engine.clear_cache()
    result = predictions.analyze(records[0].path, weights)
    assert 0.0 <= result.fracture_probability <= 1.0


def test_a_variant_that_keeps_the_answers_but_runs_slower_is_refused(
    two_networks, records, tmp_path, monkeypatch
):
    """On some CPUs dynamic-int8 runs slower than float32 (its activations are quantized at
    run time): it must then not be chosen, however well it keeps the answers."""
    weights = tmp_path / "weights"
    shutil.copytree(two_networks, weights)
    fake_speed(monkeypatch, float32=10.0, int8=12.0, dynamic_int8=14.0)
    monkeypatch.setattr(export, "INT8_MIN_AGREEMENT", 0.0)  # every variant keeps the answers
    monkeypatch.setattr(export, "INT8_MAX_AUROC_DROP", 1.0)
    choice = export.choose(weights, records, only=("fracture",))
    assert choice["chosen"]["fracture"] == "float32"
    tried = read_manifest(weights).networks["fracture"].details["parity"]["test_split"]
    expected = {"int8": 12.0, "dynamic-int8": 14.0}
    for quantization, report in tried.items():
        assert report["answers_kept"] and not report["earns_its_place"]
        assert report["latency_ms"] == {"float32": 10.0, quantization: expected[quantization]}
    assert "runs faster than float32" in choice["rule"]
    engine.clear_cache()


def test_choosing_one_network_keeps_the_others_as_they_are(two_networks, records, tmp_path):
    """A shipped folder holds only the chosen file of its older networks: --choose --networks
    NAME decides NAME alone and leaves the others (here `shared`, float32 file removed) alone."""
    weights = tmp_path / "weights"
    shutil.copytree(two_networks, weights)
    export.use_variant(weights, "shared", "dynamic-int8")
    (weights / "shared.float32.tflite").unlink()
    with pytest.raises(Exception, match="shared.float32.tflite"):
        export.choose(weights, records)
    choice = export.choose(weights, records, only=("fracture",))
    assert choice["chosen"]["shared"] == "dynamic-int8"
    assert "kept as they were: shared" in choice["rule"]
    manifest = read_manifest(weights)
    assert manifest.networks["shared"].file == "shared.dynamic-int8.tflite"
    assert "test_split" in manifest.networks["fracture"].details["parity"]
    assert "test_split" not in manifest.networks["shared"].details.get("parity", {})
    engine.clear_cache()


def test_merge_takes_the_other_folders_networks_and_heads(tiny_weights, two_networks, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    assert export.main(["--weights", str(weights), "--merge", str(two_networks)]) == 0
    merged = read_manifest(weights)
    assert set(merged.networks) == {"shared", "fracture"}
    assert merged.fracture["Elbow"].network == "fracture"
    for entry in (*merged.networks.values(), *merged.heads.values()):
        assert (weights / entry.file).is_file()
    engine.clear_cache()
    image = write_image(tmp_path / "x.png")
    expected = predictions.analyze(image, two_networks, bone="Hand").fracture_probability
    assert predictions.analyze(image, weights, bone="Hand").fracture_probability == expected


def test_locate_with_maps_points_each_fracture_head_at_its_map(two_networks, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(two_networks, weights)
    raw = json.loads((weights / "manifest.json").read_text())
    raw["heads"]["fracture_hand_map"] = {**raw["heads"]["fracture_hand"], "box_threshold": 0.5}
    (weights / "manifest.json").write_text(json.dumps(raw))
    assert export.main(["--weights", str(weights), "--locate-with-maps"]) == 0
    manifest = read_manifest(weights)
    assert manifest.fracture["Hand"].map_head == "fracture_hand_map"
    assert manifest.map_of("Hand").box_threshold == 0.5
    assert manifest.fracture["Elbow"].map_head is None


def test_prune_drops_the_verdict_term_and_network_nothing_reads_any_more(two_networks, tmp_path):
    from core.manifest import register_head_entry
    from core.models import save_head

    weights = tmp_path / "weights"
    shutil.copytree(two_networks, weights)
    outside = tmp_path / "shared.keras.npz"  # a training input kept outside the folder
    shutil.move(weights / "shared.keras.npz", outside)
    channels = read_manifest(weights).networks["shared"].feature_shape[-1]
    save_head(np.full((channels, 1), 0.01, np.float32), np.zeros(1, np.float32),
              weights / "fracture_term_shared_head.npz")  # fmt: skip
    register_head_entry(weights, "fracture_term_shared",
                        weights / "fracture_term_shared_head.npz", "shared")  # fmt: skip
    raw = json.loads((weights / "manifest.json").read_text())
    raw["heads"]["bone_type"]["network"] = "fracture"  # only the term reads `shared` now
    raw["networks"]["shared"]["keras_weights"]["file"] = "../shared.keras.npz"
    for bone in ("elbow", "hand", "shoulder"):
        raw["heads"][f"fracture_{bone}"]["plus_heads"] = ["fracture_term_shared"]
    (weights / "manifest.json").write_text(json.dumps(raw))
    assert export.prune(weights) == []  # every head and network is read

    image = write_image(tmp_path / "x.png")
    for bone in ("elbow", "hand", "shoulder"):  # the verdicts from the map alone, as merged
        del raw["heads"][f"fracture_{bone}"]["plus_heads"]
    (weights / "manifest.json").write_text(json.dumps(raw))
    engine.clear_cache()
    expected = predictions.analyze(image, weights, bone="Hand").fracture_probability
    assert export.main(["--weights", str(weights), "--prune"]) == 0
    manifest = read_manifest(weights)
    assert set(manifest.networks) == {"fracture"}
    assert "fracture_term_shared" not in manifest.heads
    assert (
        not list(weights.glob("shared.*"))
        and not (weights / "fracture_term_shared_head.npz").exists()
    )
    assert outside.is_file()
    assert (weights / "fracture.keras.npz").is_file()
    engine.clear_cache()
    assert predictions.analyze(image, weights, bone="Hand").fracture_probability == expected


def test_merge_drops_the_heads_that_read_a_network_replaced_by_another_shape(
    two_networks, tmp_path
):
    from core.manifest import register_head_entry
    from core.models import save_head

    def with_orientation(folder):
        channels = read_manifest(folder).networks["shared"].feature_shape[-1]
        save_head(np.zeros((channels, 4), np.float32), np.zeros(4, np.float32),
                  folder / "orientation_head.npz")  # fmt: skip
        register_head_entry(folder, "orientation", folder / "orientation_head.npz", "shared",
                            threshold=0.5)  # fmt: skip

    for channels_change, kept in ((0, True), (8, False)):
        weights, other = tmp_path / f"w{channels_change}", tmp_path / f"o{channels_change}"
        shutil.copytree(two_networks, weights)
        shutil.copytree(two_networks, other)
        with_orientation(weights)
        raw = json.loads((other / "manifest.json").read_text())
        raw["networks"]["shared"]["feature_shape"][-1] += channels_change
        (other / "manifest.json").write_text(json.dumps(raw))
        export.merge(weights, other)
        merged = json.loads((weights / "manifest.json").read_text())
        assert ("orientation" in merged["heads"]) is kept
        assert (weights / "orientation_head.npz").is_file() is kept
        assert "bone_type" in merged["heads"]  # the other folder's own heads come along


def test_reexport_rebuilds_a_mobilenet_from_its_keras_weights(records, tmp_path, capsys):
    import keras

    from core.manifest import NetworkEntry, load_raw
    from training.data.pipeline import calibration_images
    from training.networks.backbones import build_pretrained_network

    full = build_pretrained_network("mobilenet_v1", "none", 64)
    model = keras.Model(full.input, full.get_layer("pw5_relu").output)
    folder, images = tmp_path / "weights", calibration_images(records, 64)
    export.export_network(
        model, folder, "fracture", images, {"backbone": "mobilenet_v1"}, quantized=("int8",)
    )
    export.use_variant(folder, "fracture", "float32")  # as `--choose` may have left it
    before = load_raw(folder)["networks"]["fracture"]
    entry = NetworkEntry("fracture", before["file"], "", 64, "float32", (8, 8, 256))
    features = export.tflite_features(folder / before["file"], entry, images)
    (folder / before["variants"]["int8"]["file"]).unlink()  # a folder holding the loaded one only

    export.reexport(folder, records)
    assert not (folder / before["variants"]["int8"]["file"]).exists()  # the files it had
    after = load_raw(folder)["networks"]["fracture"]
    assert after["quantization"] == "float32" and set(after["variants"]) == {"float32", "int8"}
    assert after["keras_weights"] == before["keras_weights"]  # the same file, not a new one
    assert after["provenance"] == {"backbone": "mobilenet_v1"}
    again = export.tflite_features(folder / after["file"], entry, images)
    # the Keras weights are float16: the rebuilt network matches to that precision
    np.testing.assert_allclose(again, features, rtol=0.02, atol=0.02 * np.abs(features).max())
    assert "Network 'fracture' exported again (float32 loaded)" in capsys.readouterr().out

    keras_file = folder / before["keras_weights"]["file"]
    keras_file.write_bytes(keras_file.read_bytes() + b"\0")  # not the weights it came from
    export.reexport(folder, records)
    assert load_raw(folder)["networks"]["fracture"] == after
    assert "another checksum" in capsys.readouterr().out
    keras_file.unlink()
    export.reexport(folder, records)
    assert load_raw(folder)["networks"]["fracture"] == after
    assert "it was not exported again" in capsys.readouterr().out
