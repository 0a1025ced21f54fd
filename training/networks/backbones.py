"""The fracture stage's trunks by name: ResNet50, MobileNet v1 or MobileNet v2, from random weights,
a weights file, or Keras' published ImageNet weights, fully convolutional (any input size).

`--backbone` and `--init` of the training commands map onto `build_trunk`:
- resnet50: `init` is "none", "imagenet" (Keras downloads its ImageNet weights: the original
  design's recipe, for a machine with internet) or a backbone `.npz` (`training.networks.models`;
  default `RESNET50_INIT`);
- mobilenet_v1: `init` is "none" or a TFLite MobileNet v1 file (e.g. Google's ImageNet-trained
  `mobilenet_v1_1.0_224_quant*.tflite`, Apache-2.0), read by `training.networks.mobilenet`;
- mobilenet_v2: `init` is "none" or a TFLite MobileNet v2 1.0 file (Google's ImageNet-trained
  `mobilenet_v2_1.0_224_quant.tflite` or `tf2_mobilenet_v2_1.0_224_ptq.tflite`, Apache-2.0), read
  by `training.networks.mobilenet_v2`.

Both MobileNets come from `build_pretrained_network` (the whole network, for any stage that wants
one); their fracture trunks are its atrous form (`MOBILENET_OUTPUT_STRIDE`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.models import load_arrays

BACKBONES = ("resnet50", "mobilenet_v1", "mobilenet_v2")
MOBILENETS = ("mobilenet_v1", "mobilenet_v2")
# the last feature map before pooling (MobileNet v2: the 1280-channel 1x1 after block 16)
DEFAULT_LAYER = {
    "resnet50": "conv4_block6_out",
    "mobilenet_v1": "pw13_relu",
    "mobilenet_v2": "conv_last_relu",
}
FROZEN_PREFIXES = {
    "resnet50": ("conv1_", "conv2_", "pool1_"),
    "mobilenet_v1": ("conv0",),
    "mobilenet_v2": ("conv0",),
}
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
    if backbone == "mobilenet_v2":
        from training.networks.mobilenet_v2 import layer_stride

        return layer_stride(layer, MOBILENET_OUTPUT_STRIDE)
    return RESNET_STRIDES[layer[:5]]


def build_pretrained_network(
    backbone: str,
    init: str | Path,
    size: int | None,
    output_stride: int | None = None,
    name: str | None = None,
):
    """The whole MobileNet v1 or v2 (to its last feature map, no pooling or classifier) as a Keras
    model taking the project's model input at `size` px (None: any size). `init`: "none" (random
    weights) or a TFLite file of that network; `output_stride` 16 is the atrous form, None or 32
    the file's own; `name` defaults to the backbone's name."""
    init = str(init)
    weights = None if init == "none" else init
    options = {"output_stride": output_stride or 32, "name": name or backbone}
    if backbone == "mobilenet_v1":
        from training.networks.mobilenet import build_mobilenet_v1

        return build_mobilenet_v1(weights, size, **options)
    if backbone == "mobilenet_v2":
        from training.networks.mobilenet_v2 import build_mobilenet_v2

        return build_mobilenet_v2(weights, size, **options)
    raise ValueError(f"no pretrained network for {backbone!r} (one of {', '.join(MOBILENETS)})")


def build_trunk(backbone: str, init: str | Path, layer: str | None = None, input_size=None):
    """The trunk up to `layer` (default: the backbone's fracture-map layer), weights from `init`.
    Layers named with the backbone's frozen prefixes, and every batch norm, are not trained."""
    import keras

    layer = layer or DEFAULT_LAYER[backbone]
    init = str(init)
    if backbone in MOBILENETS:
        full = build_pretrained_network(backbone, init, input_size, MOBILENET_OUTPUT_STRIDE)
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
