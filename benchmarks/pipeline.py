"""Print input-pipeline and training-step throughput on this machine (figures, never asserted).

    python -m benchmarks.pipeline [--data FOLDER] [--images 256] [--size 224] [--batch 32]

Compares our tf.data pipeline (parallel decode with the shared preprocessing, cache, augmentation,
prefetch) with Keras' legacy `ImageDataGenerator.flow_from_dataframe`, the seed's path. Without
`--data` it writes generated 512 px PNGs to a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from core.imaging import IMAGE_EXTENSIONS
from training.data.datasets import Record


def generated_images(folder: Path, count: int) -> list[Path]:
    """Write `count` random 512 x 400 gray PNGs (MURA-like sizes)."""
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        path = folder / f"image{index}.png"
        Image.fromarray(rng.integers(0, 255, (512, 400), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def tf_data_rate(paths: list[Path], size: int, batch: int) -> tuple[float, float]:
    """Images/s of our pipeline: first epoch (decode) and second epoch (from cache)."""
    from training.data.pipeline import image_dataset

    records = [Record(p, "Hand", "hand", i % 2, str(i), str(i)) for i, p in enumerate(paths)]
    dataset = image_dataset(records, size, batch, training=True)
    rates = []
    for _ in range(2):
        start = time.perf_counter()
        for _ in dataset:
            pass
        rates.append(len(paths) / (time.perf_counter() - start))
    return rates[0], rates[1]


def legacy_rate(paths: list[Path], size: int, batch: int) -> float:
    """Images/s of `ImageDataGenerator.flow_from_dataframe` with the seed's kind of augmentation."""
    import pandas as pd
    from keras._tf_keras.keras.preprocessing.image import ImageDataGenerator
    from keras.applications.resnet50 import preprocess_input

    frame = pd.DataFrame({"path": [str(p) for p in paths], "label": ["0", "1"] * (len(paths) // 2)})
    generator = ImageDataGenerator(
        horizontal_flip=True, rotation_range=30, preprocessing_function=preprocess_input
    ).flow_from_dataframe(
        frame, x_col="path", y_col="label", target_size=(size, size), batch_size=batch
    )
    start = time.perf_counter()
    for _ in range(len(generator)):
        next(generator)
    return len(paths) / (time.perf_counter() - start)


def train_step_rate(size: int, batch: int, steps: int = 3) -> float:
    """Images/s of a ResNet50 training step (both heads) on random data."""
    import keras

    from training.networks.models import build_backbone, build_training_model
    from training.networks.train import compile_model

    model = build_training_model(build_backbone(size))
    compile_model(model, 1e-3)
    x = np.random.default_rng(0).normal(size=(batch, size, size, 3)).astype(np.float32)
    y = {"bone_type": np.zeros(batch, np.int32), "fracture": np.zeros((batch, 1), np.float32)}
    model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    del keras
    return steps * batch / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    """Run the three measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, help="folder of images (default: generated)")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        if args.data:
            paths = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)[
                : args.images
            ]
        else:
            paths = generated_images(Path(temporary), args.images)
        print(f"{len(paths)} images, {args.size} px, batch {args.batch}")
        first, cached = tf_data_rate(paths, args.size, args.batch)
        print(f"tf.data pipeline, first epoch (decode):  {first:8.1f} images/s")
        print(f"tf.data pipeline, cached epoch:          {cached:8.1f} images/s")
        legacy = legacy_rate(paths, args.size, args.batch)
        print(f"ImageDataGenerator.flow_from_dataframe:  {legacy:8.1f} images/s")
        step = train_step_rate(args.size, args.batch)
        print(f"ResNet50 training step (both heads):     {step:8.1f} images/s")


if __name__ == "__main__":
    main()
