"""The weights manifest (`weights/manifest.json`): read and validate it, verify checksums, write it.

Format 2 lists *networks* (LiteRT `.tflite` files that turn a preprocessed image into a feature
map) and *heads* (small `.npz` linear layers applied to one network's feature map). Stages may
share a network or each have their own. Every value is checked on reading, and every file must
lie inside the weights folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import errors
from core.models import (
    BONE_TYPE_CLASSES,
    BONES,
    FRACTURE_CLASSES,
    ORIENTATION_CLASSES,
    POLARITY_CLASSES,
)
from core.paths import WEIGHTS

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 2
DEFAULT_WEIGHTS = WEIGHTS
RETRAIN_ADVICE = "Get the 'weights' folder from the project again, or retrain (see README)."
QUANTIZATIONS = ("int8", "dynamic-int8", "float32")  # dynamic-int8: int8 weights, float activations
POOLINGS = ("mean", "lse")
MAX_INPUT_SIZE = 2048
MAX_MANIFEST_BYTES = 1 << 20  # the manifest is a few KB; a larger one is not read
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class NetworkEntry:
    """One LiteRT network: preprocessed (1, S, S, 3) image in, (1, h, w, C) feature map out."""

    name: str
    file: str
    sha256: str
    input_size: int
    quantization: str
    feature_shape: tuple[int, int, int]
    version: str = ""
    details: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class HeadEntry:
    """One linear head on a network's feature map, with its pooling and decision threshold."""

    name: str
    network: str
    file: str
    sha256: str
    classes: tuple[str, ...]
    pooling: str = "mean"
    pooling_r: float = 1.0
    threshold: float | None = None
    box_threshold: float | None = None  # cells above it become fracture boxes (None: no boxes)
    map_head: str | None = None  # another head whose cell map gives the boxes and heatmap
    plus_heads: tuple[str, ...] = ()  # heads (other networks) whose image logits add to this one's
    version: str = ""
    details: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Manifest:
    """The parsed, validated manifest."""

    folder: Path
    recognition_threshold: float
    networks: dict[str, NetworkEntry]
    heads: dict[str, HeadEntry]
    card: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def bone_type(self) -> HeadEntry:
        """The bone-type head."""
        return self.heads["bone_type"]

    @property
    def orientation(self) -> HeadEntry | None:
        """The optional orientation head (quarter turns from the training orientation)."""
        return self.heads.get(ORIENTATION_KEY)

    @property
    def polarity(self) -> HeadEntry | None:
        """The optional polarity head (grey levels reversed from the training images')."""
        return self.heads.get(POLARITY_KEY)

    @property
    def fracture(self) -> dict[str, HeadEntry]:
        """Each bone's fracture head, in BONES order."""
        return {bone: self.heads[fracture_key(bone)] for bone in BONES}

    def map_of(self, bone: str) -> HeadEntry:
        """The head whose cell map locates `bone`'s fractures (boxes, heatmap): its own map_head,
        or the fracture head itself."""
        head = self.fracture[bone]
        return self.heads[head.map_head] if head.map_head else head

    def verdict_of(self, bone: str) -> tuple[HeadEntry, ...]:
        """The heads whose image logits, summed, give `bone`'s fracture verdict: its fracture head
        and the heads it adds (an ensemble of networks; mean pooling keeps it one linear head on
        the networks' pooled features)."""
        head = self.fracture[bone]
        return (head, *(self.heads[key] for key in head.plus_heads))

    def network_of(self, head: HeadEntry) -> NetworkEntry:
        """The network a head reads its features from."""
        return self.networks[head.network]

    def versions(self) -> dict[str, str]:
        """Each network's and head's version, or the start of its checksum when it has none."""
        entries = [*self.networks.values(), *self.heads.values()]
        return {e.name: e.version or f"sha256 {e.sha256[:12]}" for e in entries}

    def path_of(self, entry: NetworkEntry | HeadEntry) -> Path:
        """Absolute path of a model file (already confined to the folder on reading)."""
        return self.folder / entry.file


def fracture_key(bone: str) -> str:
    """Manifest key of a bone's fracture head, e.g. 'fracture_elbow'."""
    return f"fracture_{bone.lower()}"


REQUIRED_HEADS = ("bone_type", *(fracture_key(bone) for bone in BONES))


ORIENTATION_KEY = "orientation"
POLARITY_KEY = "polarity"
GATED_HEADS = (ORIENTATION_KEY, POLARITY_KEY)  # optional heads that act above a least confidence


def expected_classes(key: str) -> tuple[str, ...]:
    """Classes a head entry must list."""
    if key == ORIENTATION_KEY:
        return ORIENTATION_CLASSES
    if key == POLARITY_KEY:
        return POLARITY_CLASSES
    return BONE_TYPE_CLASSES if key == "bone_type" else FRACTURE_CLASSES


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: Path | str = DEFAULT_WEIGHTS) -> Manifest:
    """Parse and validate `folder/manifest.json`; raise a `ModelError` subclass if unusable."""
    folder = Path(folder)
    if not folder.is_dir():
        raise errors.WeightsFolderMissingError(
            f"The model folder '{folder}' is missing.", RETRAIN_ADVICE
        )
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise errors.ManifestError(f"The model list '{path}' is missing.", RETRAIN_ADVICE)
    text = _manifest_text(folder, path)
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("it is not a JSON object")
        if raw.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"format {raw.get('format_version')!r}, this app reads format {FORMAT_VERSION}"
            )
        networks = {name: _network(name, value) for name, value in raw["networks"].items()}
        heads = {key: _head(key, value, networks) for key, value in raw["heads"].items()}
        missing = [key for key in REQUIRED_HEADS if key not in heads]
        if missing:
            raise ValueError(f"no entry for {', '.join(missing)}")
        for key in GATED_HEADS:
            if key in heads and heads[key].threshold is None:
                raise ValueError(f"the {key} head has no threshold (its least confidence)")
        for key, head in heads.items():
            if head.map_head is not None and head.map_head not in heads:
                raise ValueError(f"head '{key}' names an unknown map head {head.map_head!r}")
            for plus in head.plus_heads:
                if plus not in heads or heads[plus].plus_heads or plus == key:
                    raise ValueError(f"head '{key}' adds an unknown or nested head {plus!r}")
                if heads[plus].classes != head.classes:
                    raise ValueError(f"head '{key}' adds head {plus!r} of other classes")
        manifest = Manifest(
            folder=folder,
            recognition_threshold=_probability(raw["recognition_threshold"], "recognition"),
            networks=networks,
            heads=heads,
            card=raw.get("model_card", {}),
        )
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise errors.ManifestError(
            f"The model list '{path.name}' is damaged ({_reason(exc)}).", RETRAIN_ADVICE
        ) from exc
    except (RecursionError, MemoryError) as exc:
        raise errors.ManifestError(
            f"The model list '{path.name}' is damaged (nested too deeply).", RETRAIN_ADVICE
        ) from exc
    return manifest


def _manifest_text(folder: Path, path: Path) -> str:
    """The manifest's text: a file inside the folder (links included), of bounded size."""
    if not inside(folder, path):
        raise errors.ManifestError(
            f"The model list '{path.name}' points outside the weights folder.", RETRAIN_ADVICE
        )
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise errors.ManifestError(
            f"The model list '{path.name}' cannot be read ({exc.strerror or exc}).",
            "Check the folder's permissions. " + RETRAIN_ADVICE,
        ) from exc
    if len(data) > MAX_MANIFEST_BYTES:
        raise errors.ManifestError(
            f"The model list '{path.name}' is damaged (far too large).", RETRAIN_ADVICE
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.ManifestError(
            f"The model list '{path.name}' is damaged (not text).", RETRAIN_ADVICE
        ) from exc


def inside(folder: Path, path: Path) -> bool:
    """True when `path`, with every link resolved, lies directly in `folder` (itself resolved)."""
    try:
        return path.resolve(strict=True).parent == Path(folder).resolve(strict=True)
    except (OSError, RuntimeError):
        return False


def _reason(exc: Exception) -> str:
    if isinstance(exc, OverflowError):
        return "a number is far out of range"
    return f"missing {exc}" if isinstance(exc, KeyError) else str(exc)[:200]


def _network(name: str, raw: dict[str, Any]) -> NetworkEntry:
    size = raw["input_size"]
    if not isinstance(size, int) or not 0 < size <= MAX_INPUT_SIZE:
        raise ValueError(f"network '{name}' has input size {size!r}")
    shape = tuple(raw["feature_shape"])
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"network '{name}' has feature shape {list(shape)!r}")
    if raw["quantization"] not in QUANTIZATIONS:
        raise ValueError(f"network '{name}' has quantization {raw['quantization']!r}")
    known = {"file", "sha256", "input_size", "quantization", "feature_shape", "version"}
    return NetworkEntry(
        name=name,
        file=_confined(raw["file"]),
        sha256=_checksum(raw["sha256"], name),
        input_size=size,
        quantization=raw["quantization"],
        feature_shape=shape,
        version=str(raw.get("version", "")),
        details={key: value for key, value in raw.items() if key not in known},
    )


def _head(key: str, raw: dict[str, Any], networks: dict[str, NetworkEntry]) -> HeadEntry:
    if raw["network"] not in networks:
        raise ValueError(f"head '{key}' uses an unknown network {raw['network']!r}")
    classes = tuple(raw["classes"])
    if key in (*REQUIRED_HEADS, *GATED_HEADS) and classes != expected_classes(key):
        raise ValueError(f"head '{key}' lists classes {list(classes)}")
    pooling = raw.get("pooling", "mean")
    if pooling not in POOLINGS:
        raise ValueError(f"head '{key}' has pooling {pooling!r}")
    pooling_r = float(raw.get("pooling_r", 1.0))
    if not math.isfinite(pooling_r) or pooling_r <= 0:
        raise ValueError(f"head '{key}' has pooling_r {pooling_r!r}")
    threshold, box_threshold = raw.get("threshold"), raw.get("box_threshold")
    known = {"network", "file", "sha256", "classes", "pooling", "pooling_r", "version"}
    known |= {"threshold", "box_threshold", "map_head", "plus_heads"}
    plus_heads = raw.get("plus_heads", [])
    if not isinstance(plus_heads, list) or not all(isinstance(k, str) for k in plus_heads):
        raise ValueError(f"head '{key}' has plus_heads {plus_heads!r}")
    return HeadEntry(
        name=key,
        network=raw["network"],
        file=_confined(raw["file"]),
        sha256=_checksum(raw["sha256"], key),
        classes=classes,
        pooling=pooling,
        pooling_r=pooling_r,
        threshold=None if threshold is None else _probability(threshold, key),
        box_threshold=None if box_threshold is None else _probability(box_threshold, f"{key} box"),
        map_head=raw.get("map_head"),
        plus_heads=tuple(plus_heads),
        version=str(raw.get("version", "")),
        details={name: value for name, value in raw.items() if name not in known},
    )


def _confined(name: Any) -> str:
    """A model file must be a plain file name inside the weights folder."""
    text = str(name)
    if not text or Path(text).name != text or text in (".", "..") or "\\" in text:
        raise ValueError(f"model file {text!r} is outside the weights folder")
    return text


def _checksum(value: Any, what: str) -> str:
    """A sha256 written as 64 hex digits, in either case (kept in lower case)."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ValueError(f"'{what}' has no valid sha256 checksum")
    return value.lower()


def _probability(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"the {what} threshold {value!r} is not a number")
    number = float(value)
    if not (math.isfinite(number) and 0.0 < number < 1.0):
        raise ValueError(f"the {what} threshold {value!r} is not between 0 and 1")
    return number


def verified_path(manifest: Manifest, entry: NetworkEntry | HeadEntry) -> Path:
    """Path of a model file after checking it exists and matches its checksum."""
    path = manifest.path_of(entry)
    if not path.is_file():
        raise errors.ModelFileMissingError(
            f"The model file '{entry.file}' is missing from '{manifest.folder}'.", RETRAIN_ADVICE
        )
    if not inside(manifest.folder, path):
        raise errors.InvalidModelFileError(
            f"The model file '{entry.file}' points outside the weights folder.", RETRAIN_ADVICE
        )
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise errors.InvalidModelFileError(
            f"The model file '{entry.file}' cannot be read ({exc.strerror or exc}).",
            RETRAIN_ADVICE,
        ) from exc
    if digest != entry.sha256.lower():
        raise errors.ChecksumMismatchError(
            f"The model file '{entry.file}' is damaged or was changed (checksum mismatch).",
            RETRAIN_ADVICE,
        )
    return path


# ----------------------------------------------------------------------------- writers


def load_raw(folder: Path) -> dict[str, Any]:
    """The manifest as a plain dict (an empty format-2 skeleton when none exists yet)."""
    path = Path(folder) / MANIFEST_NAME
    if path.is_file():
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format_version") == FORMAT_VERSION:
            return raw
    return {"format_version": FORMAT_VERSION, "networks": {}, "heads": {}, "model_card": {}}


def write_raw(folder: Path, raw: dict[str, Any]) -> Path:
    """Write the manifest atomically, pretty-printed for review in git."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST_NAME
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(raw, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def register_network(
    folder: Path,
    name: str,
    file_path: Path,
    input_size: int,
    quantization: str,
    feature_shape: tuple[int, int, int],
    **details: Any,
) -> dict[str, Any]:
    """Add or replace one network entry (with its checksum); returns the entry."""
    raw = load_raw(folder)
    entry = {
        "file": file_path.name,
        "sha256": sha256_file(file_path),
        "input_size": int(input_size),
        "quantization": quantization,
        "feature_shape": [int(side) for side in feature_shape],
        **details,
    }
    raw["networks"][name] = entry
    write_raw(folder, raw)
    return entry


def register_head_entry(
    folder: Path, key: str, file_path: Path, network: str, **details: Any
) -> dict[str, Any]:
    """Add or replace one head entry (with its checksum); returns the entry."""
    raw = load_raw(folder)
    entry = {
        "network": network,
        "file": file_path.name,
        "sha256": sha256_file(file_path),
        "classes": list(expected_classes(key)),
        **details,
    }
    raw["heads"][key] = entry
    write_raw(folder, raw)
    return entry
