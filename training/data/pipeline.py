"""tf.data input pipeline: parallel decode with the shared preprocessing, cache, augment, prefetch.

Decoding goes through `core.imaging.read_xray` + `prepare`, and the last step is the shared
`normalize`, so a batch without augmentation equals what `predictions.py` feeds the model.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence

import numpy as np

from core.errors import TriageError
from core.imaging import normalize, prepare, preprocess, read_xray
from core.models import BONE_TYPE_CLASSES
from training.data.datasets import Record

MAX_CLASS_WEIGHT = 5.0


def decode(path: bytes | str, size: int) -> np.ndarray:
    """Read one file into a (size, size, 1) float32 [0, 255] gray square (the cached form)."""
    path = path.decode() if isinstance(path, bytes) else path
    try:
        return prepare(read_xray(path), int(size))[..., :1]
    except TriageError as error:
        print(f"Skipping {path}: {error}", file=sys.stderr)
        raise


def make_augmenter(seed: int = 0):
    """Training-only augmentation: flip, rotation up to 30 degrees, small zoom and shift,
    brightness and contrast. Works on batches of [0, 255] images."""
    import keras

    layers = keras.layers
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(30 / 360, fill_mode="constant", seed=seed + 1),
            layers.RandomZoom((-0.1, 0.1), fill_mode="constant", seed=seed + 2),
            layers.RandomTranslation(0.08, 0.08, fill_mode="constant", seed=seed + 3),
            layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed + 4),
            layers.RandomContrast(0.2, value_range=(0, 255), seed=seed + 5),
        ],
        name="augment",
    )


def finish(gray):
    """(…, size, size, 1) [0, 255] gray -> 3 channels -> the shared `normalize`."""
    import tensorflow as tf

    rgb = tf.repeat(tf.clip_by_value(gray, 0.0, 255.0), 3, axis=-1)
    return normalize(rgb)


def class_weights(labels: Sequence[int], classes: int) -> np.ndarray:
    """Inverse-frequency weights (mean 1 over the data), capped at `MAX_CLASS_WEIGHT`."""
    counts = Counter(labels)
    total = len(labels)
    weights = np.array(
        [total / (classes * counts[c]) if counts[c] else 0.0 for c in range(classes)], np.float32
    )
    return np.minimum(weights, MAX_CLASS_WEIGHT)


def targets(records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray]:
    """Bone-type class index and fracture label for each record."""
    bone = np.array([BONE_TYPE_CLASSES.index(r.bone) for r in records], np.int32)
    fracture = np.array([r.label for r in records], np.float32)
    return bone, fracture


def sample_weights(
    records: Sequence[Record], reference: Sequence[Record] | None = None
) -> dict[str, np.ndarray]:
    """Per-sample class weights for both outputs, computed on `reference` (the training split)."""
    reference = records if reference is None else reference
    ref_bone, ref_fracture = targets(reference)
    bone, fracture = targets(records)
    bone_w = class_weights(ref_bone.tolist(), len(BONE_TYPE_CLASSES))
    fracture_w = class_weights(ref_fracture.astype(int).tolist(), 2)
    return {"bone_type": bone_w[bone], "fracture": fracture_w[fracture.astype(int)]}


def image_dataset(
    records: Sequence[Record],
    size: int,
    batch_size: int,
    training: bool = False,
    seed: int = 0,
    weights_from: Sequence[Record] | None = None,
    cache: bool = True,
    skip_errors: bool = True,
):
    """Batched (image, targets, sample weights) dataset; augmented and shuffled when `training`.

    Unreadable images are reported on stderr and skipped when `skip_errors`.
    """
    import tensorflow as tf

    bone, fracture = targets(records)
    weights = sample_weights(records, weights_from)
    paths = [str(r.path) for r in records]
    data = tf.data.Dataset.from_tensor_slices(
        (paths, {"bone_type": bone, "fracture": fracture[:, None]}, weights)
    )

    def load(path, y, w):
        image = tf.numpy_function(decode, [path, size], tf.float32, stateful=False)
        image.set_shape((size, size, 1))
        return image, y, w

    data = data.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if skip_errors:
        data = data.ignore_errors()
    if cache:
        data = data.cache()
    if training:
        data = data.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size)
    if training:
        augment = make_augmenter(seed)
        data = data.map(
            lambda x, y, w: (augment(x, training=True), y, w), num_parallel_calls=tf.data.AUTOTUNE
        )
    data = data.map(lambda x, y, w: (finish(x), y, w), num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


def images_only(records: Sequence[Record], size: int, batch_size: int):
    """Batched preprocessed images in record order (no labels, no augmentation)."""
    dataset = image_dataset(records, size, batch_size, cache=False, skip_errors=False)
    return dataset.map(lambda x, y, w: x)


def calibration_images(records: Sequence[Record], size: int, count: int = 256) -> np.ndarray:
    """Preprocessed images spread evenly over `records` (int8 calibration, parity checks)."""
    chosen = list(records)[:: max(1, len(records) // count)][:count]
    images = []
    for record in chosen:
        try:
            images.append(preprocess(read_xray(record.path), size))
        except TriageError as error:
            print(f"Skipping {record.path}: {error}", file=sys.stderr)
    return np.stack(images)
