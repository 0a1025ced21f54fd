"""Public inference API and command line: bone type first, then that bone's fracture model.

    predict(path)            -> "Elbow" | "Hand" | "Shoulder"
    predict(path, bone)      -> "fractured" | "normal"
    analyze(path)            -> Prediction (both stages, probabilities, threshold, timing)
    analyze_study(paths)     -> StudyPrediction (MURA: mean probability over the study's views)
    explain(path)            -> Explanation (Grad-CAM array and overlay image)

Command line: python predictions.py IMAGE_OR_FOLDER... [--study] [--json] [--heatmap OUT_DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core import errors
from core.image_cache import ImageCache
from core.imaging import IMAGE_EXTENSIONS, XrayImage, prepare, preprocess
from core.models import BONES, is_recognised

FRACTURED, NORMAL = "fractured", "normal"


@dataclass(frozen=True)
class Prediction:
    """The two-stage result for one image."""

    path: str
    bone: str
    bone_probabilities: dict[str, float]
    recognised: bool
    recognition_threshold: float
    fracture_probability: float
    label: str
    threshold: float
    model_versions: dict[str, str]
    seconds: float

    @property
    def bone_confidence(self) -> float:
        """Probability of the reported bone type."""
        return self.bone_probabilities[self.bone]

    @property
    def label_confidence(self) -> float:
        """Probability of the reported label: p for 'fractured', 1 - p for 'normal'."""
        p = self.fracture_probability
        return p if self.label == FRACTURED else 1.0 - p


@dataclass(frozen=True)
class StudyPrediction:
    """One result for several views of one study: the mean fracture probability over its images."""

    paths: tuple[str, ...]
    images: tuple[Prediction, ...]
    bone: str
    bone_probabilities: dict[str, float]
    views_agree: bool
    recognised: bool
    fracture_probability: float
    label: str
    threshold: float
    seconds: float
    view_bones: tuple[str, ...] = field(default=())

    @property
    def label_confidence(self) -> float:
        """Probability of the reported label."""
        p = self.fracture_probability
        return p if self.label == FRACTURED else 1.0 - p


@dataclass(frozen=True)
class Explanation:
    """Grad-CAM of the fracture decision: `heat` on the model grid, `overlay` on the X-ray."""

    bone: str
    heat: np.ndarray
    overlay: object  # PIL.Image.Image


def _engine(weights_dir: str | Path | None):
    from core.engine import get_engine  # imports TensorFlow on first use only

    return get_engine(weights_dir)


_IMAGES = ImageCache()


def _decoded(path: str | Path) -> XrayImage:
    """The decoded file and its notes, decoded once per content (the cache key is a hash of the
    file's bytes, so a replaced file never gets an older file's answer)."""
    return _IMAGES.load(path)


def _read(path: str | Path) -> np.ndarray:
    """The decoded pixels of a file (see `_decoded`)."""
    return _decoded(path).pixels


def _versions(engine) -> dict[str, str]:
    manifest = engine.manifest
    entries = [manifest.backbone, manifest.bone_type, *manifest.fracture.values()]
    return {entry.name: entry.version or entry.sha256[:12] for entry in entries}


def _label(probability: float, threshold: float) -> str:
    return FRACTURED if probability >= threshold else NORMAL


def analyze(path: str | Path, weights_dir: str | Path | None = None) -> Prediction:
    """Run bone type, then the routed fracture model, on one X-ray file."""
    start = time.perf_counter()
    engine = _engine(weights_dir)
    image = preprocess(_read(path), engine.manifest.input_size)
    raw = engine.run(image[None])[0]
    return _prediction(str(path), raw, engine, time.perf_counter() - start)


def _prediction(path: str, raw, engine, seconds: float) -> Prediction:
    manifest = engine.manifest
    probabilities = raw.bone_probabilities
    bone = max(BONES, key=probabilities.get)
    threshold = manifest.fracture[bone].threshold or 0.5
    fracture = raw.fracture_probabilities[bone]
    return Prediction(
        path=path,
        bone=bone,
        bone_probabilities=probabilities,
        recognised=is_recognised(probabilities, manifest.recognition_threshold),
        recognition_threshold=manifest.recognition_threshold,
        fracture_probability=fracture,
        label=_label(fracture, threshold),
        threshold=threshold,
        model_versions=_versions(engine),
        seconds=seconds,
    )


def analyze_study(
    paths: Sequence[str | Path], weights_dir: str | Path | None = None
) -> StudyPrediction:
    """Analyse 1+ views of one study; the study probability is the mean over its images."""
    if not paths:
        raise errors.EmptyImageError("No images were given for this study.", "Select 1 to 3 views.")
    start = time.perf_counter()
    engine = _engine(weights_dir)
    size = engine.manifest.input_size
    batch = np.stack([preprocess(_read(path), size) for path in paths])
    raws = engine.run(batch)
    elapsed = time.perf_counter() - start
    images = tuple(
        _prediction(str(p), raw, engine, elapsed / len(paths))
        for p, raw in zip(paths, raws, strict=True)
    )
    mean_bone = {
        name: float(np.mean([raw.bone_probabilities[name] for raw in raws]))
        for name in raws[0].bone_probabilities
    }
    bone = max(BONES, key=mean_bone.get)
    threshold = engine.manifest.fracture[bone].threshold or 0.5
    probability = float(np.mean([raw.fracture_probabilities[bone] for raw in raws]))
    view_bones = tuple(image.bone for image in images)
    return StudyPrediction(
        paths=tuple(str(p) for p in paths),
        images=images,
        bone=bone,
        bone_probabilities=mean_bone,
        views_agree=len(set(view_bones)) == 1,
        recognised=is_recognised(mean_bone, engine.manifest.recognition_threshold),
        fracture_probability=probability,
        label=_label(probability, threshold),
        threshold=threshold,
        seconds=time.perf_counter() - start,
        view_bones=view_bones,
    )


def predict(path: str | Path, bone: str | None = None, weights_dir: str | Path | None = None):
    """The seed's call: the bone type, or 'fractured'/'normal' for `bone`."""
    engine = _engine(weights_dir)
    image = preprocess(_read(path), engine.manifest.input_size)
    raw = engine.run(image[None])[0]
    if bone is None:
        return max(BONES, key=raw.bone_probabilities.get)
    bone = bone.capitalize()
    if bone not in BONES:
        raise ValueError(f"bone must be one of {BONES}, got {bone!r}")
    threshold = engine.manifest.fracture[bone].threshold or 0.5
    return _label(raw.fracture_probabilities[bone], threshold)


def explain(
    path: str | Path, bone: str | None = None, weights_dir: str | Path | None = None
) -> Explanation:
    """Grad-CAM of `bone`'s fracture model (default: the predicted bone) for one image."""
    from core.heatmap import overlay

    engine = _engine(weights_dir)
    size = engine.manifest.input_size
    gray = _read(path)
    if bone is None:
        bone = analyze(path, weights_dir).bone
    heat = engine.gradcam(preprocess(gray, size), bone)
    return Explanation(bone=bone, heat=heat, overlay=overlay(gray, heat, size))


def model_input(path: str | Path, size: int) -> np.ndarray:
    """The exact array the model sees for a file (for tests and debugging)."""
    return preprocess(_read(path), size)


def unnormalized_input(path: str | Path, size: int) -> np.ndarray:
    """The letterboxed [0, 255] image before normalisation."""
    return prepare(_read(path), size)


# ----------------------------------------------------------------------------- command line


def find_images(inputs: Iterable[str]) -> list[Path]:
    """Expand folders into the image files inside them (recursively, hidden files and folders
    skipped, links to folders not followed); anything that is not a folder is kept as given, so
    reading it reports what is wrong with it (missing, a pipe, a device, a name too long)."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if _is_folder(path):
            found.extend(_images_in(path))
        else:
            found.append(path)
    return found


def _is_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):  # missing, name too long, NUL in the name: not a folder
        return False


def _images_in(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):  # unreadable sub-folders are skipped
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        for name in files:
            path = Path(root) / name
            if name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            try:
                if stat.S_ISREG(os.stat(path).st_mode):
                    found.append(path)
            except OSError:
                found.append(path)  # reading it will say what is wrong
    return sorted(found)


def _row(result: Prediction | StudyPrediction) -> dict:
    data = asdict(result)
    data.pop("images", None)
    data["label_confidence"] = result.label_confidence
    return data


def _describe(result: Prediction | StudyPrediction) -> str:
    bone = f"{result.bone} ({result.bone_probabilities[result.bone]:.0%})"
    if not result.recognised:
        return f"not recognised as elbow/hand/shoulder (best guess {bone})"
    verdict = f"{result.label} ({result.label_confidence:.0%}, p={result.fracture_probability:.2f})"
    extra = ""
    if isinstance(result, StudyPrediction) and not result.views_agree:
        extra = f"  [views disagree: {', '.join(result.view_bones)}]"
    return f"{bone:<16} {verdict}{extra}"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns 1 if any input failed (after reporting all of them)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    parser.add_argument(
        "--study", action="store_true", help="treat each folder (or all files) as one study"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.add_argument("--heatmap", metavar="OUT_DIR", help="write Grad-CAM overlays as PNG here")
    parser.add_argument("--weights", metavar="DIR", help="weights folder (default: ./weights)")
    args = parser.parse_args(argv)

    groups = _groups(args.inputs, args.study)
    failures = 0
    for name, paths in groups:
        try:
            if not paths:
                raise _no_images(name)
            if args.study:
                result = analyze_study(paths, args.weights)
            else:
                result = analyze(paths[0], args.weights)
            if args.heatmap:
                _write_heatmaps(paths, result.bone, Path(args.heatmap), args.weights)
        except Exception as error:  # noqa: BLE001 - every input gets its line; the batch goes on
            failures += 1
            message = str(error) if isinstance(error, errors.TriageError) else _unexpected(error)
            if args.json:
                print(json.dumps({"path": name, "error": type(error).__name__, "message": message}))
            else:
                print(f"{name:<48} ERROR: {message}")
            continue
        if args.json:
            print(json.dumps(_row(result)))
        else:
            print(f"{name:<48} {_describe(result)}")
    if not args.json:
        print(
            f"\n{len(groups) - failures} analysed, {failures} failed. Decision support only: "
            "a radiologist must confirm every finding."
        )
    return 1 if failures else 0


def _groups(inputs: Sequence[str], study: bool) -> list[tuple[str, list[Path]]]:
    """(name, paths) per line of output; a folder without images is a group with no paths."""
    if study and all(_is_folder(Path(item)) for item in inputs):
        return [(item, find_images([item])) for item in inputs]
    if study:
        return [("study", find_images(inputs))]
    groups = []
    for item in inputs:
        found = find_images([item])
        groups.extend([(str(p), [p]) for p in found] if found else [(item, [])])
    return groups


def _no_images(name: str) -> errors.NoImagesFoundError:
    return errors.NoImagesFoundError(
        f"The folder '{name}' holds no X-ray images (PNG, JPEG, BMP, TIFF or DICOM).",
        "Check the folder, or give the image files themselves.",
    )


def _unexpected(error: Exception) -> str:
    return (
        f"This file could not be analysed because of an unexpected problem "
        f"({type(error).__name__}: {error}). Nothing was changed; please report it."
    )


def _write_heatmaps(paths: list[Path], bone: str, out_dir: Path, weights) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        explanation = explain(path, bone, weights)
        explanation.overlay.save(out_dir / f"{Path(path).stem}_gradcam.png")


if __name__ == "__main__":
    sys.exit(main())
