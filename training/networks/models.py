"""Build the Keras ResNet50 networks that training uses, and save or load backbone weights (.npz).

TensorFlow/Keras live here and in the rest of `training/`; the app runs the LiteRT export
(`training/export/litert.py`) and never imports this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.models import BONE_TYPE_CLASSES, compact, invalid_model_file, load_arrays, save_npz

FULL_CUT = "conv5_block3_out"


def build_backbone(input_size: int, init: str = "none", cut: str = FULL_CUT):
    """ResNet50 without its top, cut at layer `cut` (default: the last block, stride 32).

    `cut="conv4_block6_out"` gives the stride-16 trunk (1024 channels). `init` is "none"
    (random), "imagenet" (downloads Keras' weights; needs internet) or the path of a `.npz`
    written by `save_backbone` (it may hold more layers than the cut network needs).
    """
    import keras

    from training.networks.backbones import imagenet_resnet50

    shape = (input_size, input_size, 3)
    if init == "imagenet":
        full = imagenet_resnet50(include_top=False, input_shape=shape)
    else:
        full = keras.applications.ResNet50(include_top=False, weights=None, input_shape=shape)
    backbone = full if cut == FULL_CUT else keras.Model(full.input, full.get_layer(cut).output)
    if init not in ("none", "imagenet"):
        load_backbone_weights(backbone, Path(init))
    return backbone


def build_training_model(backbone, dropout: float = 0.3):
    """Backbone + pooled features + two heads: `bone_type` (softmax) and `fracture` (sigmoid)."""
    import keras

    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(backbone.output)
    dropped = keras.layers.Dropout(dropout, name="head_dropout")(pooled)
    bone_type = keras.layers.Dense(
        len(BONE_TYPE_CLASSES), activation="softmax", name="bone_type", dtype="float32"
    )(dropped)
    fracture = keras.layers.Dense(1, activation="sigmoid", name="fracture", dtype="float32")(
        dropped
    )
    return keras.Model(backbone.input, {"bone_type": bone_type, "fracture": fracture})


def save_backbone(backbone, path: Path) -> None:
    """Write every backbone variable (weights and batch-norm statistics) as float16."""
    arrays = {variable.path: compact(variable.numpy()) for variable in backbone.weights}
    save_npz(arrays, path)


def load_backbone_weights(backbone, path: Path) -> None:
    """Assign weights saved by `save_backbone`; raise `InvalidModelFileError` on any mismatch."""
    arrays = load_arrays(path)
    for variable in backbone.weights:
        array = arrays.get(variable.path)
        if array is None or tuple(array.shape) != tuple(variable.shape):
            raise invalid_model_file(path, f"it has no matching weights for {variable.path}")
        variable.assign(array.astype(np.float32))
