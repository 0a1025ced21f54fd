"""The fracture stage's trunks by name: ResNet50 or MobileNet v1, from random weights, a weights
file, or Keras' published ImageNet weights, fully convolutional (any input size).

`--backbone` and `--init` of the training commands map onto `build_trunk`:
- resnet50: `init` is "none", "imagenet" (Keras downloads its ImageNet weights: the original
  design's recipe, for a machine with internet) or a backbone `.npz` (`training.networks.models`;
  default `RESNET50_INIT`);
- mobilenet_v1: `init` is "none" or a TFLite MobileNet v1 file (e.g. Google's ImageNet-trained
  `mobilenet_v1_1.0_224_quant*.tflite`, Apache-2.0), read by `training.networks.mobilenet`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.models import load_arrays

BACKBONES = ("resnet50", "mobilenet_v1")
DEFAULT_LAYER = {"resnet50": "conv4_block6_out", "mobilenet_v1": "pw13_relu"}
FROZEN_PREFIXES = {"resnet50": ("conv1_", "conv2_", "pool1_"), "mobilenet_v1": ("conv0",)}
RESNET_STRIDES = {"conv2": 4, "conv3": 8, "conv4": 16, "conv5": 32}
MOBILENET_OUTPUT_STRIDE = 16  # the atrous form: a 24 x 24 map at 384 px
# the float16 ResNet50 earlier releases started from (a training input, not in weights/)
RESNET50_INIT = Path(__file__).resolve().parents[1] / "init" / "backbone_resnet50.npz"


def imagenet_resnet50(**kwargs):
    """Keras' ResNet50 with its published ImageNet weights (downloads them once; needs internet).
    A module-level seam, so tests can stand in for the download."""
    import keras

    return keras.applications.ResNet50(weights="imagenet", **kwargs)


def trunk_stride(backbone: str, layer: str) -> int:
    """Pixels per feature-map cell of `layer`."""
    if backbone == "mobilenet_v1":
        return MOBILENET_OUTPUT_STRIDE
    return RESNET_STRIDES[layer[:5]]


def build_trunk(backbone: str, init: str | Path, layer: str | None = None, input_size=None):
    """The trunk up to `layer` (default: the backbone's fracture-map layer), weights from `init`.
    Layers named with the backbone's frozen prefixes, and every batch norm, are not trained."""
    import keras

    layer = layer or DEFAULT_LAYER[backbone]
    init = str(init)
    if backbone == "mobilenet_v1":
        from training.networks.mobilenet import build_mobilenet_v1

        full = build_mobilenet_v1(
            None if init == "none" else init, input_size, MOBILENET_OUTPUT_STRIDE
        )
    elif backbone == "resnet50":
        shape = (input_size, input_size, 3)
        if init == "imagenet":
            full = imagenet_resnet50(include_top=False, input_shape=shape)
        else:
            full = keras.applications.ResNet50(include_top=False, weights=None, input_shape=shape)
    else:
        raise ValueError(f"unknown backbone {backbone!r} (choose from {', '.join(BACKBONES)})")
    trunk = keras.Model(full.input, full.get_layer(layer).output, name="fracture_trunk")
    if backbone == "resnet50" and init not in ("none", "imagenet"):
        load_trunk_weights(trunk, Path(init))
    for item in trunk.layers:
        frozen = item.name.startswith(FROZEN_PREFIXES[backbone])
        if frozen or isinstance(item, keras.layers.BatchNormalization):
            item.trainable = False
    return trunk


def load_trunk_weights(trunk, path: Path) -> None:
    """Assign the trunk's variables from a backbone .npz (`save_backbone` format)."""
    arrays = load_arrays(path)
    for variable in trunk.weights:
        array = arrays.get(variable.path)
        if array is None or tuple(array.shape) != tuple(variable.shape):
            raise ValueError(f"{path} has no weights of shape {variable.shape} for {variable.path}")
        variable.assign(array.astype(np.float32))
