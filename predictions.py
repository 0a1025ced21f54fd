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
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from core import errors
from core.imaging import IMAGE_EXTENSIONS, prepare, preprocess, read_xray
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


@lru_cache(maxsize=8)
def _decoded(path: str, mtime_ns: int) -> np.ndarray:
    return read_xray(path)


def _read(path: str | Path) -> np.ndarray:
    """Decode a file once per version (cached by path and modification time)."""
    path = Path(path)
    if not path.is_file():
        return read_xray(path)  # raises the right typed error
    return _decoded(str(path), path.stat().st_mtime_ns)


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
    """Expand folders into the image files inside them (recursively, hidden files skipped)."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file()
                    and p.suffix.lower() in IMAGE_EXTENSIONS
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                )
            )
        else:
            found.append(path)
    return found


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
            if args.study:
                result = analyze_study(paths, args.weights)
            else:
                result = analyze(paths[0], args.weights)
            if args.heatmap:
                _write_heatmaps(paths, result.bone, Path(args.heatmap), args.weights)
        except errors.TriageError as error:
            failures += 1
            if args.json:
                print(
                    json.dumps({"path": name, "error": type(error).__name__, "message": str(error)})
                )
            else:
                print(f"{name:<48} ERROR: {error}")
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
    if not study:
        return [(str(p), [p]) for p in find_images(inputs)]
    if all(Path(item).is_dir() for item in inputs):
        return [(item, find_images([item])) for item in inputs]
    return [("study", find_images(inputs))]


def _write_heatmaps(paths: list[Path], bone: str, out_dir: Path, weights) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        explanation = explain(path, bone, weights)
        explanation.overlay.save(out_dir / f"{Path(path).stem}_gradcam.png")


if __name__ == "__main__":
    sys.exit(main())
