"""Load the verified networks and heads once and run them: each distinct network once per image.

No TensorFlow here: networks run on LiteRT (`core.runtime`), heads in numpy (`core.heads`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.framing import Frame, content_box, frame_for
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
    quarter_turns: int = 0  # the image was turned back by this many quarter turns for the
    # networks after the orientation head (0: seen as it is)
    inverted: bool = False  # the fracture networks saw the grey levels reversed back


class Engine:
    """The manifest's networks and heads, loaded and verified."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.heads: dict[str, Head] = {
            key: self._load_head(entry) for key, entry in manifest.heads.items()
        }
        used = {entry.network for entry in manifest.heads.values()}
        self.fracture_networks = {  # the networks the fracture verdicts and maps read
            head.network
            for bone in manifest.fracture
            for head in (*manifest.verdict_of(bone), manifest.map_of(bone))
        }
        self.networks: dict[str, Network] = {
            name: Network(verified_path(manifest, manifest.networks[name]), manifest.networks[name])
            for name in sorted(used)
        }

    def _load_head(self, entry: HeadEntry) -> Head:
        channels = self.manifest.network_of(entry).feature_shape[-1]
        outputs = len(entry.classes) if len(entry.classes) > 2 else 1
        kernel, bias = load_head(verified_path(self.manifest, entry), channels, outputs)
        return Head(kernel, bias, entry.pooling, entry.pooling_r)

    def run(self, gray: np.ndarray) -> RawOutput:
        """All stages on one [0, 1] gray X-ray. With an orientation head, the fracture networks
        see the image turned back to the orientation they were trained on (their feature maps are
        turned again afterwards, so maps and boxes fit the image as is); with a polarity head,
        with its grey levels reversed back when they look inverted. Each network runs once,
        except one that both those heads and the fracture heads read, on a changed image."""
        manifest = self.manifest
        gates = [head for head in (manifest.orientation, manifest.polarity) if head]
        readers = (  # the networks that see the image as it is (without gated heads: all)
            {manifest.bone_type.network, *(head.network for head in gates)}
            if gates
            else set(self.networks)
        )
        box = content_box(gray)
        as_is, frames = self._features(gray, [n for n in self.networks if n in readers], box)
        turns, inverted = self._quarter_turns(as_is), self._inverted(as_is)
        features = dict(as_is)
        fracture_nets = [n for n in self.networks if n in self.fracture_networks]
        redo = [n for n in fracture_nets if n not in as_is or turns or inverted]
        if redo:
            source = 1.0 - gray if inverted else gray  # the same content box (uniform lines)
            upright = np.ascontiguousarray(np.rot90(source, -turns)) if turns else source
            more, more_frames = self._features(upright, redo, None if turns else box)
            for name in redo:
                features[name], frames[name] = more[name], more_frames[name]
                if turns:  # back to the image as it is
                    features[name] = np.rot90(more[name], turns)
                    frames[name] = frame_for(gray, more_frames[name].size, box=box)
        bone_logits = self.heads["bone_type"].logits(as_is[manifest.bone_type.network])
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
            quarter_turns=turns,
            inverted=inverted,
        )

    def _features(
        self, gray: np.ndarray, names: list[str], box
    ) -> tuple[dict[str, np.ndarray], dict[str, Frame]]:
        """Feature maps and framing of the named networks on one image (one content box)."""
        sizes = [self.networks[name].input_size for name in names]
        inputs = model_inputs(gray, sizes, box)
        features, frames = {}, {}
        for name, (pixels, frame) in zip(names, inputs, strict=True):
            features[name], frames[name] = self.networks[name].features(pixels), frame
        return features, frames

    def _quarter_turns(self, features: dict[str, np.ndarray]) -> int:
        """How many quarter turns (counter-clockwise) the image is from the training orientation,
        by the orientation head; 0 without one or when it is not sure enough."""
        entry = self.manifest.orientation
        if entry is None:
            return 0
        probabilities = softmax(self.heads[entry.name].logits(features[entry.network]))
        best = int(np.argmax(probabilities))
        return best if probabilities[best] >= entry.threshold else 0

    def _inverted(self, features: dict[str, np.ndarray]) -> bool:
        """Whether the polarity head is sure enough that the grey levels are reversed (bone
        dark, background light); False without one."""
        entry = self.manifest.polarity
        if entry is None:
            return False
        probability = float(sigmoid(self.heads[entry.name].logits(features[entry.network]))[0])
        return probability >= entry.threshold

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
