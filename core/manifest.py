"""The weights manifest (`weights/manifest.json`): read it, verify checksums, write entries."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import errors
from core.models import BONE_TYPE_CLASSES, BONES, FRACTURE_CLASSES

MANIFEST_NAME = "manifest.json"
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
RETRAIN_ADVICE = "Get the 'weights' folder from the project again, or retrain (see README)."


@dataclass(frozen=True)
class ModelEntry:
    """One model file listed in the manifest."""

    name: str
    file: str
    sha256: str
    classes: tuple[str, ...] = ()
    threshold: float | None = None
    version: str = ""
    details: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Manifest:
    """The parsed manifest: input size, the recognition threshold and every model entry."""

    folder: Path
    input_size: int
    recognition_threshold: float
    backbone: ModelEntry
    bone_type: ModelEntry
    fracture: dict[str, ModelEntry]
    card: dict[str, Any] = field(default_factory=dict, compare=False)

    def path_of(self, entry: ModelEntry) -> Path:
        """Absolute path of a model file."""
        return self.folder / entry.file


def fracture_key(bone: str) -> str:
    """Manifest key of a bone's fracture model, e.g. 'fracture_elbow'."""
    return f"fracture_{bone.lower()}"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: Path | str = DEFAULT_WEIGHTS) -> Manifest:
    """Parse `folder/manifest.json`; raise a `ModelError` subclass if it is missing or invalid."""
    folder = Path(folder)
    if not folder.is_dir():
        raise errors.WeightsFolderMissingError(
            f"The model folder '{folder}' is missing.", RETRAIN_ADVICE
        )
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise errors.ManifestError(f"The model list '{path}' is missing.", RETRAIN_ADVICE)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        models = raw["models"]
        manifest = Manifest(
            folder=folder,
            input_size=int(raw["input_size"]),
            recognition_threshold=float(raw["recognition_threshold"]),
            backbone=_entry("backbone", models["backbone"]),
            bone_type=_entry("bone_type", models["bone_type"]),
            fracture={
                bone: _entry(fracture_key(bone), models[fracture_key(bone)]) for bone in BONES
            },
            card=raw.get("model_card", {}),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.ManifestError(
            f"The model list '{path.name}' is damaged ({exc}).", RETRAIN_ADVICE
        ) from exc
    if manifest.bone_type.classes != BONE_TYPE_CLASSES:
        raise errors.ManifestError(
            f"The bone-type model lists classes {manifest.bone_type.classes}, "
            f"expected {BONE_TYPE_CLASSES}.",
            RETRAIN_ADVICE,
        )
    return manifest


def _entry(name: str, raw: dict[str, Any]) -> ModelEntry:
    threshold = raw.get("threshold")
    known = {"file", "sha256", "classes", "threshold", "version"}
    return ModelEntry(
        name=name,
        file=str(raw["file"]),
        sha256=str(raw["sha256"]),
        classes=tuple(raw.get("classes", ())),
        threshold=None if threshold is None else float(threshold),
        version=str(raw.get("version", "")),
        details={key: value for key, value in raw.items() if key not in known},
    )


def verified_path(manifest: Manifest, entry: ModelEntry) -> Path:
    """Path of a model file after checking it exists and matches its checksum."""
    path = manifest.path_of(entry)
    if not path.is_file():
        raise errors.ModelFileMissingError(
            f"The model file '{entry.file}' is missing from '{manifest.folder}'.", RETRAIN_ADVICE
        )
    if sha256_file(path) != entry.sha256:
        raise errors.ChecksumMismatchError(
            f"The model file '{entry.file}' is damaged or was changed (checksum mismatch).",
            RETRAIN_ADVICE,
        )
    return path


def load_raw(folder: Path) -> dict[str, Any]:
    """The manifest as a plain dict (empty skeleton when none exists yet), for writers."""
    path = folder / MANIFEST_NAME
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"format_version": 1, "models": {}, "model_card": {}}


def write_raw(folder: Path, raw: dict[str, Any]) -> Path:
    """Write the manifest atomically, pretty-printed for review in git."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST_NAME
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(raw, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def register_model(
    folder: Path, key: str, file_path: Path, classes: tuple[str, ...], **details: Any
) -> dict[str, Any]:
    """Add or replace one model entry (with its checksum) in the manifest; returns the entry."""
    raw = load_raw(folder)
    entry = {
        "file": file_path.name,
        "sha256": sha256_file(file_path),
        "classes": list(classes),
        **details,
    }
    raw.setdefault("models", {})[key] = entry
    write_raw(folder, raw)
    return entry


def expected_classes(key: str) -> tuple[str, ...]:
    """Classes a manifest entry must list for the model `key`."""
    if key == "bone_type":
        return BONE_TYPE_CLASSES
    if key.startswith("fracture_"):
        return FRACTURE_CLASSES
    return ()
