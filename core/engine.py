"""Load the verified models once and run them: one backbone pass gives every head's output.

TensorFlow is imported here and nowhere in the GUI, so the window can open before it loads.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import errors
from core.manifest import Manifest, read_manifest, verified_path
from core.models import BONE_TYPE_CLASSES, BONES, load_arrays, load_head
from core.resnet_graph import FoldedResNet50, fold_backbone


@dataclass(frozen=True)
class RawOutput:
    """Outputs of one forward pass: bone-type probabilities and each bone's fracture probability."""

    bone_probabilities: dict[str, float]
    fracture_probabilities: dict[str, float]


def load_weights(manifest: Manifest):
    """Verified, folded backbone arrays, the bone-type head and the fracture heads (BONES order)."""
    backbone_path = verified_path(manifest, manifest.backbone)
    folded = fold_backbone(load_arrays(backbone_path), backbone_path)
    bone_type = load_head(verified_path(manifest, manifest.bone_type), len(BONE_TYPE_CLASSES))
    fracture = [load_head(verified_path(manifest, manifest.fracture[bone]), 1) for bone in BONES]
    return folded, bone_type, fracture


class Engine:
    """The loaded backbone and heads, with a traced inference function and Grad-CAM."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        size = manifest.input_size
        with ThreadPoolExecutor(max_workers=1) as pool:
            # Checksums, reading and batch-norm folding (numpy) overlap the TensorFlow import.
            loading = pool.submit(load_weights, manifest)
            import tensorflow as tf

            folded, (bone_kernel, bone_bias), fracture = loading.result()
        self.backbone = FoldedResNet50(folded)
        self._bone_kernel = tf.constant(bone_kernel)
        self._bone_bias = tf.constant(bone_bias)
        self._fracture_kernel = tf.constant(np.concatenate([k for k, _ in fracture], axis=1))
        self._fracture_bias = tf.constant(np.concatenate([b for _, b in fracture], axis=0))
        signature = [tf.TensorSpec([None, size, size, 3], tf.float32)]
        self._infer = tf.function(self._forward, input_signature=signature, reduce_retracing=True)
        self._gradcam = tf.function(self._gradcam_maps, input_signature=signature)
        self._traced = threading.Event()
        self._tracing = threading.Lock()
        self._first_call_done = False

    def warm_up(self) -> None:
        """Trace the fast inference function now (about 2 s on 2 cores); later runs use it."""
        with self._tracing:
            if not self._traced.is_set():
                size = self.manifest.input_size
                self._infer(np.zeros((1, size, size, 3), np.float32))
                self._traced.set()

    def _heads(self, feature_map):
        import tensorflow as tf

        pooled = tf.reduce_mean(feature_map, axis=[1, 2])
        bone = tf.nn.softmax(tf.matmul(pooled, self._bone_kernel) + self._bone_bias)
        fracture_logits = tf.matmul(pooled, self._fracture_kernel) + self._fracture_bias
        return bone, fracture_logits

    def _forward(self, images):
        import tensorflow as tf

        bone, fracture_logits = self._heads(self.backbone(images, training=False))
        return bone, tf.sigmoid(fracture_logits)

    def _gradcam_maps(self, images):
        """Grad-CAM maps (one per bone's fracture head) over the last convolutional block."""
        import tensorflow as tf

        feature_map = self.backbone(images, training=False)
        maps = []
        for index in range(len(BONES)):
            with tf.GradientTape() as tape:
                tape.watch(feature_map)
                _, logits = self._heads(feature_map)
                target = logits[:, index]
            gradients = tape.gradient(target, feature_map)
            weights = tf.reduce_mean(gradients, axis=[1, 2], keepdims=True)
            maps.append(tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1)))
        return tf.stack(maps, axis=1)

    def run(self, batch: np.ndarray) -> list[RawOutput]:
        """Run the models on preprocessed images of shape (n, size, size, 3).

        The very first call runs eagerly (0.3 s instead of about 2 s of tracing), so a single
        prediction comes quickly; the second call traces the fast function, which every later
        call uses. The app traces it in the background right after start-up (`warm_up`).
        """
        batch = np.asarray(batch, dtype=np.float32)
        if not self._traced.is_set() and not self._first_call_done:
            self._first_call_done = True
            bone, fracture = self._forward(batch)
        else:
            self.warm_up()
            bone, fracture = self._infer(batch)
        bone, fracture = bone.numpy(), fracture.numpy()
        return [
            RawOutput(
                bone_probabilities=dict(zip(BONE_TYPE_CLASSES, map(float, bone[i]), strict=True)),
                fracture_probabilities=dict(zip(BONES, map(float, fracture[i]), strict=True)),
            )
            for i in range(len(bone))
        ]

    def gradcam(self, image: np.ndarray, bone: str) -> np.ndarray:
        """Grad-CAM for `bone`'s fracture head on one preprocessed image, scaled to [0, 1]."""
        maps = self._gradcam(np.asarray(image, dtype=np.float32)[None])
        heat = maps.numpy()[0, BONES.index(bone)]
        top = float(heat.max())
        return (heat / top if top > 0 else heat).astype(np.float32)


_engines: dict[Path, Engine] = {}
_lock = threading.Lock()


def get_engine(weights_dir: Path | str | None = None) -> Engine:
    """The engine for a weights folder, loaded lazily and once (thread-safe)."""
    manifest = read_manifest(weights_dir) if weights_dir else read_manifest()
    key = manifest.folder.resolve()
    with _lock:
        if key not in _engines:
            _engines[key] = Engine(manifest)
        return _engines[key]


def clear_cache() -> None:
    """Forget loaded engines (tests, or after new weights were written)."""
    with _lock:
        _engines.clear()


__all__ = ["Engine", "RawOutput", "get_engine", "clear_cache", "errors"]
