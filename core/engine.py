"""Load the verified networks and heads once and run them: each distinct network once per image.

No TensorFlow here: networks run on LiteRT (`core.runtime`), heads in numpy (`core.heads`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.framing import Frame
from core.heads import Head, sigmoid, softmax
from core.imaging import model_inputs
from core.manifest import (
    DEFAULT_WEIGHTS,
    MANIFEST_NAME,
    HeadEntry,
    Manifest,
    read_manifest,
    verified_path,
)
from core.models import BONE_TYPE_CLASSES, load_head
from core.runtime import Network


@dataclass(frozen=True)
class RawOutput:
    """One image's model outputs: probabilities, each bone's fracture cell logits and framing."""

    bone_probabilities: dict[str, float]
    fracture_probabilities: dict[str, float]
    fracture_maps: dict[str, np.ndarray]  # bone -> (h, w) cell logits of its map head
    fracture_frames: dict[str, Frame]  # bone -> geometry of that map's network input
    features: dict[str, np.ndarray]  # network name -> (h, w, C) feature map


class Engine:
    """The manifest's networks and heads, loaded and verified."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.heads: dict[str, Head] = {
            key: self._load_head(entry) for key, entry in manifest.heads.items()
        }
        used = {entry.network for entry in manifest.heads.values()}
        self.networks: dict[str, Network] = {
            name: Network(verified_path(manifest, manifest.networks[name]), manifest.networks[name])
            for name in sorted(used)
        }

    def _load_head(self, entry: HeadEntry) -> Head:
        channels = self.manifest.network_of(entry).feature_shape[-1]
        outputs = len(BONE_TYPE_CLASSES) if entry.name == "bone_type" else 1
        kernel, bias = load_head(verified_path(self.manifest, entry), channels, outputs)
        return Head(kernel, bias, entry.pooling, entry.pooling_r)

    def run(self, gray: np.ndarray) -> RawOutput:
        """All stages on one [0, 1] gray X-ray; each network runs once."""
        features: dict[str, np.ndarray] = {}
        frames: dict[str, Frame] = {}
        sizes = [network.input_size for network in self.networks.values()]
        inputs = model_inputs(gray, sizes)  # one content box and one crop for all sizes
        for (name, network), (pixels, frame) in zip(self.networks.items(), inputs, strict=True):
            features[name], frames[name] = network.features(pixels), frame
        manifest = self.manifest
        bone_logits = self.heads["bone_type"].logits(features[manifest.bone_type.network])
        bone = softmax(bone_logits)
        fracture, maps, fracture_frames = {}, {}, {}
        for name in manifest.fracture:
            logits = sum(
                self.heads[head.name].logits(features[head.network])
                for head in manifest.verdict_of(name)
            )
            fracture[name] = float(sigmoid(logits)[0])
            located = manifest.map_of(name)
            maps[name] = self.heads[located.name].cell_logits(features[located.network])[..., 0]
            fracture_frames[name] = frames[located.network]
        return RawOutput(
            bone_probabilities=dict(zip(BONE_TYPE_CLASSES, map(float, bone), strict=True)),
            fracture_probabilities=fracture,
            fracture_maps=maps,
            fracture_frames=fracture_frames,
            features=features,
        )

    def activation_map(self, raw: RawOutput, bone: str) -> tuple[np.ndarray, Frame]:
        """Class activation map of `bone`'s map head (h, w, in [0, 1]) and its framing."""
        located = self.manifest.map_of(bone)
        heat = self.heads[located.name].activation_map(raw.features[located.network])
        return heat, raw.fracture_frames[bone]


_engines: dict[tuple[Path, int, int], Engine] = {}
_lock = threading.Lock()


def get_engine(weights_dir: Path | str | None = None) -> Engine:
    """The engine for a weights folder, loaded lazily and once (thread-safe); loaded again when
    the folder's manifest file changes (it is checked with a stat, not parsed, on each call)."""
    folder = Path(weights_dir) if weights_dir else DEFAULT_WEIGHTS
    try:
        stat = (folder / MANIFEST_NAME).stat()
    except OSError:
        read_manifest(folder)  # raises the clinician-readable error for a missing folder or file
        raise
    key = (folder.resolve(), stat.st_mtime_ns, stat.st_size)
    with _lock:
        if key not in _engines:
            engine = Engine(read_manifest(folder))
            for stale in [k for k in _engines if k[0] == key[0]]:
                del _engines[stale]
            _engines[key] = engine
        return _engines[key]


def clear_cache() -> None:
    """Forget loaded engines (tests, or after new weights were written)."""
    with _lock:
        _engines.clear()


__all__ = ["Engine", "RawOutput", "clear_cache", "get_engine"]
