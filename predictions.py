"""Public inference API and command line: bone type first, then that bone's fracture model.

    predict(path)              -> "Elbow" | "Hand" | "Shoulder"
    predict(path, bone)        -> "fractured" | "normal"
    analyze(path, bone=None)   -> Prediction (both stages, probabilities, threshold, boxes, timing)
    analyze_study(paths, bone=None) -> StudyPrediction (MURA: mean probability over the views)
    explain(path)              -> Explanation (class activation map and overlay image)

The bone type comes from, in order: the caller (`bone=`, "chosen"), the DICOM header ("DICOM
tag"), or the bone-type model ("model"). The models run on LiteRT; TensorFlow is not needed.

`label` is the verdict the window shows: "fractured", "normal", or "not recognised" when the image
is not recognised as an elbow, hand or shoulder X-ray (no verdict, no boxes). The model's own
number is always in `model_fracture_probability`, which is not a verdict.

Command line: python predictions.py IMAGE_OR_FOLDER... [--study] [--bone B] [--json] [--heatmap DIR]
              [--csv OUT.csv] [--report OUT.pdf] [--dicom-out DIR]
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
from core.bone_routing import TagRouting, bone_from_bytes
from core.image_cache import ImageCache
from core.imaging import IMAGE_EXTENSIONS, XrayImage, prepare, preprocess, read_file_bytes
from core.models import BONES, is_recognised

FRACTURED, NORMAL, NOT_RECOGNISED = "fractured", "normal", "not recognised"
MIN_ANALYSIS_SIDE = 48  # pixels; a smaller image (a thumbnail) cannot show a fracture
FROM_MODEL, FROM_TAG, CHOSEN = "model", "DICOM tag", "chosen"


@dataclass(frozen=True)
class Prediction:
    """The two-stage result for one image."""

    path: str
    bone: str
    bone_probabilities: dict[str, float]
    recognised: bool
    recognition_threshold: float
    model_fracture_probability: float  # the model's number for `bone`; a verdict only via `label`
    label: str  # "fractured" | "normal" | "not recognised" (no verdict)
    threshold: float
    model_versions: dict[str, str]
    seconds: float
    bone_source: str = FROM_MODEL
    model_bone: str = ""
    model_agrees: bool = True
    routing_note: str = ""
    boxes: tuple = ()
    notes: tuple[str, ...] = ()

    @property
    def bone_confidence(self) -> float:
        """Probability of the reported bone type."""
        return self.bone_probabilities[self.bone]

    @property
    def fracture_probability(self) -> float:
        """The model's fracture probability (`model_fracture_probability`); read `label` for the
        verdict: with "not recognised" this number is no verdict."""
        return self.model_fracture_probability

    @property
    def label_confidence(self) -> float | None:
        """Probability of the reported label: p for 'fractured', 1 - p for 'normal', None when
        there is no verdict."""
        return _confidence(self.label, self.model_fracture_probability)


@dataclass(frozen=True)
class StudyPrediction:
    """One result for several views of one study: the mean fracture probability over its images."""

    paths: tuple[str, ...]
    images: tuple[Prediction, ...]
    bone: str
    bone_probabilities: dict[str, float]
    views_agree: bool
    recognised: bool
    model_fracture_probability: float  # the mean of the views' model numbers; not a verdict
    label: str  # "fractured" | "normal" | "not recognised" (no verdict)
    threshold: float
    seconds: float
    view_bones: tuple[str, ...] = field(default=())
    bone_source: str = FROM_MODEL
    model_bone: str = ""
    model_agrees: bool = True
    routing_note: str = ""
    notes: tuple[str, ...] = ()

    @property
    def fracture_probability(self) -> float:
        """The study's model fracture probability; read `label` for the verdict."""
        return self.model_fracture_probability

    @property
    def label_confidence(self) -> float | None:
        """Probability of the reported label, None when there is no verdict."""
        return _confidence(self.label, self.model_fracture_probability)


def _confidence(label: str, probability: float) -> float | None:
    if label == NOT_RECOGNISED:
        return None
    return probability if label == FRACTURED else 1.0 - probability


@dataclass(frozen=True)
class Explanation:
    """Class activation map of the fracture decision: `heat` on the model grid, `overlay` on
    the X-ray (for global-average pooling this equals Grad-CAM)."""

    bone: str
    heat: np.ndarray
    overlay: object  # PIL.Image.Image


def _engine(weights_dir: str | Path | None):
    from core.engine import get_engine

    return get_engine(weights_dir)


_IMAGES = ImageCache()


def _decoded(path: str | Path) -> XrayImage:
    """The decoded file and its notes, decoded once per content (the cache key is a hash of the
    file's bytes, so a replaced file never gets an older file's answer)."""
    return _analysable(_IMAGES.load(path), path)


def _opened(path: str | Path) -> tuple[TagRouting, XrayImage]:
    """A file read once (size limit first, before any parsing): what its DICOM header says about
    the bone, and its decoded image."""
    data = read_file_bytes(path)
    name = Path(path).name
    tags = bone_from_bytes(data, name)
    return tags, _analysable(_IMAGES.decode(data, name), path)


def _analysable(image: XrayImage, path: str | Path) -> XrayImage:
    """The image, or `ImageTooSmallError` when a side is under MIN_ANALYSIS_SIDE pixels."""
    height, width = image.pixels.shape
    if min(height, width) < MIN_ANALYSIS_SIDE:
        raise errors.ImageTooSmallError(
            f"The image '{Path(path).name}' is too small ({width} x {height} pixels) to show a "
            f"fracture; at least {MIN_ANALYSIS_SIDE} pixels per side are needed.",
            "Open the full-size image, not a thumbnail.",
        )
    return image


def _read(path: str | Path) -> np.ndarray:
    """The decoded pixels of a file (see `_decoded`)."""
    return _decoded(path).pixels


def _versions(engine) -> dict[str, str]:
    return engine.manifest.versions()


def _label(probability: float, threshold: float, recognised: bool = True) -> str:
    if not recognised:
        return NOT_RECOGNISED
    return FRACTURED if probability >= threshold else NORMAL


@dataclass(frozen=True)
class _Route:
    """Where the bone type comes from before the models run."""

    bone: str | None
    source: str
    note: str = ""
    excluded: bool = False  # the DICOM header names a body part that is not one of the three


def chosen_bone(bone: str) -> str:
    """'elbow' -> 'Elbow'; anything else raises `UnknownBoneError`."""
    name = str(bone).strip().capitalize()
    if name not in BONES:
        raise errors.UnknownBoneError(
            f"'{bone}' is not a bone this tool analyses.", "Choose Elbow, Hand or Shoulder."
        )
    return name


def _route(tags: Sequence[TagRouting], bone: str | None) -> _Route:
    chosen = chosen_bone(bone) if bone is not None else None
    named = {tag.bone for tag in tags if tag.bone}
    note = next((tag.note for tag in tags if tag.note), "")
    if chosen:
        return _Route(chosen, CHOSEN, note)  # the header's word on the body part stays visible
    if len(named) == 1 and not note:
        return _Route(named.pop(), FROM_TAG)
    if any(tag.excluded for tag in tags) and not named:
        return _Route(None, FROM_TAG, note, excluded=True)
    return _Route(None, FROM_MODEL, note)


def _decide(route: _Route, probabilities: dict[str, float], recognition: float) -> dict:
    """The bone whose fracture model decides, and whether a verdict is given."""
    model_bone = max(BONES, key=probabilities.get)
    if route.bone:
        bone, recognised = route.bone, True
    else:
        bone = model_bone
        recognised = not route.excluded and is_recognised(probabilities, recognition)
    return {
        "bone": bone,
        "recognised": recognised,
        "bone_source": route.source,
        "model_bone": model_bone,
        "model_agrees": model_bone == bone,
        "routing_note": route.note,
    }


def analyze(
    path: str | Path, weights_dir: str | Path | None = None, bone: str | None = None
) -> Prediction:
    """Bone type (chosen, DICOM tag or model), then that bone's fracture model, on one file."""
    start = time.perf_counter()
    if bone is not None:
        chosen_bone(bone)  # an unknown bone fails before any reading
    tags, image = _opened(path)
    route = _route([tags], bone)
    engine = _engine(weights_dir)
    raw = engine.run(image.pixels)
    return _prediction(str(path), raw, engine, route, image, time.perf_counter() - start)


def _prediction(path: str, raw, engine, route: _Route, image, seconds: float) -> Prediction:
    manifest = engine.manifest
    decision = _decide(route, raw.bone_probabilities, manifest.recognition_threshold)
    bone = decision["bone"]
    threshold = manifest.fracture[bone].threshold or 0.5
    fracture = raw.fracture_probabilities[bone]
    recognised = decision["recognised"]
    return Prediction(
        path=path,
        bone_probabilities=raw.bone_probabilities,
        recognition_threshold=manifest.recognition_threshold,
        model_fracture_probability=fracture,
        label=_label(fracture, threshold, recognised),
        threshold=threshold,
        model_versions=_versions(engine),
        seconds=seconds,
        boxes=_boxes(engine, raw, bone, image.pixels.shape) if recognised else (),
        notes=image.notes
        + ((*_view_notes(raw), *_model_note(manifest, bone)) if recognised else ()),
        **decision,
    )


def _model_note(manifest, bone: str) -> tuple[str, ...]:
    """Which fracture model gave the verdict (the manifest's `answered_by`), beside a verdict."""
    answered_by = manifest.fracture[bone].details.get("answered_by")
    return (f"Fracture model: {answered_by}.",) if answered_by else ()


def _view_notes(raw) -> tuple[str, ...]:
    """Say so when the fracture models saw the image turned back to their training orientation
    or with its grey levels reversed back (only beside a verdict: an image with no verdict needs
    no word on the fracture models)."""
    notes = []
    if raw.quarter_turns:
        how = {1: "a quarter turn anticlockwise", 2: "upside down", 3: "a quarter turn clockwise"}
        notes.append(
            f"The image looks turned {how[raw.quarter_turns]} from the X-rays the fracture models "
            "learned from; they looked at it turned back."
        )
    if raw.inverted:
        notes.append(
            "The image's grey levels look reversed (bone dark, background light); the fracture "
            "models looked at it with bone white, as they learned."
        )
    return tuple(notes)


def _boxes(engine, raw, bone: str, shape) -> tuple:
    """The most likely fracture regions in image pixels (none if the head has no box threshold)."""
    box_threshold = engine.manifest.map_of(bone).box_threshold
    if box_threshold is None:
        return ()
    from core.boxes import boxes_from_map
    from core.heads import sigmoid

    probabilities = sigmoid(raw.fracture_maps[bone])
    return boxes_from_map(probabilities, raw.fracture_frames[bone], shape, box_threshold)


def analyze_study(
    paths: Sequence[str | Path],
    weights_dir: str | Path | None = None,
    bone: str | None = None,
) -> StudyPrediction:
    """Analyse 1+ views of one study; the study probability is the mean over its images."""
    if not paths:
        raise errors.EmptyImageError("No images were given for this study.", "Select 1 to 3 views.")
    start = time.perf_counter()
    if bone is not None:
        chosen_bone(bone)
    opened = [_opened(path) for path in paths]
    tags = [tag for tag, _ in opened]
    decoded = [image for _, image in opened]
    route = _route(tags, bone)
    engine = _engine(weights_dir)
    raws = [engine.run(image.pixels) for image in decoded]
    elapsed = time.perf_counter() - start
    images = tuple(
        _prediction(str(p), raw, engine, route, image, elapsed / len(paths))
        for p, raw, image in zip(paths, raws, decoded, strict=True)
    )
    mean_bone = {
        name: float(np.mean([raw.bone_probabilities[name] for raw in raws]))
        for name in raws[0].bone_probabilities
    }
    decision = _decide(route, mean_bone, engine.manifest.recognition_threshold)
    chosen = decision["bone"]
    threshold = engine.manifest.fracture[chosen].threshold or 0.5
    probability = float(np.mean([raw.fracture_probabilities[chosen] for raw in raws]))
    view_bones = tuple(_view_bone(tag, image) for tag, image in zip(tags, images, strict=True))
    agree = len(set(view_bones)) == 1
    model_notes = {note for name in BONES for note in _model_note(engine.manifest, name)}
    notes = tuple(  # which model answered is said once, for the study, not for every view
        f"{Path(i.path).name}: {note}"
        for i in images
        for note in i.notes
        if note not in model_notes
    )
    if decision["recognised"]:
        notes += _model_note(engine.manifest, chosen)
    if not agree:
        pairs = zip(images, view_bones, strict=True)
        shown = ", ".join(f"{Path(image.path).name} {view}" for image, view in pairs)
        notes = (f"The views disagree on the bone type ({shown}).", *notes)
    return StudyPrediction(
        paths=tuple(str(p) for p in paths),
        images=images,
        bone_probabilities=mean_bone,
        views_agree=agree,
        model_fracture_probability=probability,
        label=_label(probability, threshold, decision["recognised"]),
        threshold=threshold,
        seconds=time.perf_counter() - start,
        view_bones=view_bones,
        notes=notes,
        **decision,
    )


def _view_bone(tags: TagRouting, image: Prediction) -> str:
    """One view's bone: its DICOM header's, else the model's best guess ("Other" when the model
    finds another region likelier than any of the three bones)."""
    if tags.bone:
        return tags.bone
    probabilities = image.bone_probabilities
    return max(probabilities, key=probabilities.get)


def predict(path: str | Path, bone: str | None = None, weights_dir: str | Path | None = None):
    """The seed's call: the bone type, or 'fractured'/'normal' for `bone`."""
    if bone is None:
        return analyze(path, weights_dir).bone
    return analyze(path, weights_dir, bone=bone).label


def explain(
    path: str | Path, bone: str | None = None, weights_dir: str | Path | None = None
) -> Explanation:
    """Class activation map of `bone`'s fracture model (default: the routed bone) for one image."""
    from core.heatmap import overlay

    tags, image = _opened(path)
    route = _route([tags], bone)
    engine = _engine(weights_dir)
    gray = image.pixels
    raw = engine.run(gray)
    chosen = _decide(route, raw.bone_probabilities, engine.manifest.recognition_threshold)["bone"]
    heat, frame = engine.activation_map(raw, chosen)
    return Explanation(bone=chosen, heat=heat, overlay=overlay(gray, heat, frame))


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


class UnreadableFolder(type(Path())):
    """A folder met while scanning that could not be listed: it gets its own error line."""


def _images_in(folder: Path) -> list[Path]:
    """Files with an image name (pipes, devices and broken links included: reading them says
    what is wrong), and every sub-folder that could not be listed, as `UnreadableFolder`."""
    found: list[Path] = []

    def unreadable(error: OSError) -> None:
        found.append(UnreadableFolder(error.filename or folder))

    for root, dirs, files in os.walk(folder, onerror=unreadable):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        for name in files:
            path = Path(root) / name
            if name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            found.append(path)
    return sorted(found)


def _row(result: Prediction | StudyPrediction) -> dict:
    data = asdict(result)
    data.pop("images", None)
    data["label_confidence"] = result.label_confidence
    return data


def other_region_likeliest(probabilities: dict[str, float]) -> float | None:
    """The 'Other' probability when other region is the model's most likely class, else None
    (said beside the model's best bone, so a low bone guess is read in context)."""
    likeliest = max(probabilities, key=probabilities.get)
    return None if likeliest in BONES else probabilities[likeliest]


def _describe(result: Prediction | StudyPrediction) -> str:
    model_guess = f"{result.model_bone} {result.bone_probabilities[result.model_bone]:.0%}"
    other = other_region_likeliest(result.bone_probabilities)
    if other is not None:
        model_guess += f", other region {other:.0%}"
    if result.bone_source == FROM_MODEL:
        bone = f"{result.bone} ({result.bone_probabilities[result.bone]:.0%})"
    else:
        agreement = "agrees" if result.model_agrees else f"model says {model_guess}"
        bone = f"{result.bone} ({result.bone_source}; {agreement})"
    if not result.recognised:
        reason = result.routing_note or "not recognised as elbow/hand/shoulder"
        return f"{reason} (best guess {model_guess}); no verdict. Use --bone to choose one."
    verdict = f"{result.label} ({result.label_confidence:.0%}, p={result.fracture_probability:.2f})"
    return f"{bone:<16} {verdict}"  # a study's disagreeing views are named in its notes


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns 1 if any input failed (after reporting all of them)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    parser.add_argument(
        "--study", action="store_true", help="treat each folder (or all files) as one study"
    )
    parser.add_argument(
        "--bone",
        type=str.capitalize,
        choices=BONES,
        help="analyse as this bone (elbow, hand or shoulder) instead of detecting it",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.add_argument("--heatmap", metavar="OUT_DIR", help="write Grad-CAM overlays as PNG here")
    parser.add_argument("--weights", metavar="DIR", help="weights folder (default: ./weights)")
    parser.add_argument("--csv", metavar="OUT.csv", help="also write the results as CSV")
    parser.add_argument("--report", metavar="OUT.pdf", help="also write a PDF report")
    parser.add_argument(
        "--dicom-out", metavar="DIR", help="write each DICOM input's result as Secondary Capture"
    )
    args = parser.parse_args(argv)

    try:
        return _report(args)
    except BrokenPipeError:  # e.g. `| head`: the reader has gone, stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 1


def _report(args: argparse.Namespace) -> int:
    """One line (or JSON object) per input group, then the summary; the exit code."""
    groups = _groups(args.inputs, args.study)
    failures = 0
    outcomes = []  # results and failures, for the report outputs
    for name, paths in groups:
        try:
            if not paths:
                raise _no_images(name)
            _check_folders(paths)
            if args.study:
                result = analyze_study(paths, args.weights, bone=args.bone)
            else:
                result = analyze(paths[0], args.weights, bone=args.bone)
            if args.heatmap:
                _write_heatmaps(paths, result.bone, Path(args.heatmap), args.weights)
        except Exception as error:  # noqa: BLE001 - every input gets its line; the batch goes on
            failures += 1
            message = str(error) if isinstance(error, errors.TriageError) else _unexpected(error)
            outcomes.append((name, message))
            if args.json:
                print(json.dumps({"path": name, "error": type(error).__name__, "message": message}))
            else:
                print(shown_name(f"{name:<48} ERROR: {message}"))
            continue
        outcomes.append(result)
        if args.json:
            print(json.dumps(_row(result)))
        else:
            notes = "".join(f"  [{note}]" for note in result.notes)  # e.g. a file cut short
            print(shown_name(f"{name:<48} {_describe(result)}{notes}"))
    if not args.json:
        print(
            f"\n{len(groups) - failures} analysed, {failures} failed. Decision support only: "
            "a radiologist must confirm every finding."
        )
    if args.csv or args.report or args.dicom_out:
        from reports.outputs import write_outputs

        failures += write_outputs(
            outcomes, args.csv, args.report, args.dicom_out, args.json, args.weights
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


def shown_name(name: str) -> str:
    """Text kept on one table line: control characters (a newline in a file name) escaped."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in str(name))


def _check_folders(paths: Sequence[Path]) -> None:
    """A folder that could not be listed is an error, not a silent gap."""
    for path in paths:
        if isinstance(path, UnreadableFolder):
            raise errors.FileUnreadableError(
                f"The folder '{shown_name(path)}' cannot be read, so its images were not analysed.",
                "Ask for read access to the folder, or copy it to a folder of your own.",
            )


def _no_images(name: str) -> errors.NoImagesFoundError:
    return errors.NoImagesFoundError(
        f"The folder '{shown_name(name)}' holds no X-ray images (PNG, JPEG, BMP, TIFF or DICOM).",
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
