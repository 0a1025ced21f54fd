"""Evaluate the app's own prediction path on a test split and write a JSON report and plots.

    python -m training.report.evaluate --data PATH [--split test] [--weights DIR] [--out DIR]

Every image goes through `predictions.analyze`, exactly as in the app. Fracture metrics are
grouped by each image's true bone and use the fracture probability the app shows (the model
routed by the predicted bone type); per-study figures use the mean probability over a study's
images, as in the MURA paper. The "all regions" group adds the images of other regions: the
app gives them no verdict, but it shows how well the fracture signal carries across regions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import predictions
from core.errors import TriageError
from core.models import BONE_TYPE_CLASSES, BONES
from training import metrics
from training.data import datasets
from training.data.datasets import Record
from training.report import localisation, plots

ROOT = Path(__file__).resolve().parent.parent.parent


def evaluate(records: list[Record], weights_dir: Path | str | None = None, seed: int = 0) -> dict:
    """Run the app's prediction on every record and compute the report (a JSON-ready dict)."""
    return report_of(*predict_all(records, weights_dir), len(records), seed)


def predict_all(records: list[Record], weights_dir: Path | str | None = None) -> tuple[list, list]:
    """(record, prediction) rows of the records the app could read, and the failures."""
    rows, failures = [], []
    for record in records:
        try:
            result = predictions.analyze(record.path, weights_dir)
        except TriageError as error:
            failures.append({"path": str(record.path), "error": str(error)})
            continue
        rows.append((record, result))
    return rows, failures


def report_of(rows: list, failures: list, images: int, seed: int) -> dict:
    """The report of predicted rows: bone type, fracture per group, localisation, ROC curves."""
    groups = fracture_groups(rows)
    return {
        "images": images,
        "failed": failures,
        "bone_type": bone_type_report(rows),
        "fracture": {name: fracture_report(members, seed) for name, members in groups.items()},
        "localisation": localisation.report_from_predictions(rows),
        "_curves": {
            name: (
                [r.label for r, _ in members],
                [p.fracture_probability for _, p in members],
            )
            for name, members in groups.items()
        },
    }


def fracture_groups(rows: list) -> dict[str, list]:
    """Rows grouped by true bone, the three bones together, and every region."""
    groups = {bone: [(r, p) for r, p in rows if r.bone == bone] for bone in BONES}
    groups["all three bones"] = [(r, p) for r, p in rows if r.bone in BONES]
    groups["all regions"] = rows  # the fracture signal on every image; the app shows no verdict
    # for images it does not recognise, so this group describes the model, not the app
    return groups


def bone_type_report(rows) -> dict:
    """Accuracy over the three bones, 4-class confusion, and how often 'Other' is flagged."""
    truth = [BONE_TYPE_CLASSES.index(r.bone) for r, _ in rows]
    shown = [BONE_TYPE_CLASSES.index(p.bone) if p.recognised else 3 for _, p in rows]
    bones = [(r, p) for r, p in rows if r.bone in BONES]
    others = [p for r, p in rows if r.bone == "Other"]
    return {
        "classes": list(BONE_TYPE_CLASSES),
        "confusion": metrics.confusion_matrix(truth, shown, len(BONE_TYPE_CLASSES)).tolist(),
        "best_guess_accuracy_3_bones": _mean([r.bone == p.bone for r, p in bones]),
        "recognised_and_correct_3_bones": _mean(
            [p.recognised and r.bone == p.bone for r, p in bones]
        ),
        "images_of_3_bones": len(bones),
        "other_flagged_not_recognised": _mean([not p.recognised for p in others]),
        "images_of_other_regions": len(others),
        "per_bone": {
            bone: {
                "images": sum(r.bone == bone for r, _ in bones),
                "best_guess_right": _mean([p.bone == bone for r, p in bones if r.bone == bone]),
                "recognised_and_right": _mean(
                    [p.recognised and p.bone == bone for r, p in bones if r.bone == bone]
                ),
            }
            for bone in BONES
        },
    }


def fracture_report(members, seed: int) -> dict:
    """Per-image and per-study metrics with bootstrap intervals for one group of images."""
    if not members:
        return {"n": 0}
    labels = [r.label for r, _ in members]
    scores = [p.fracture_probability for _, p in members]
    threshold = float(np.median([p.threshold for _, p in members]))
    _, study_labels, study_probs = metrics.study_scores(
        [r.study for r, _ in members], labels, scores
    )
    return {
        "per_image": metrics.summarise(labels, scores, threshold, seed),
        "per_study": metrics.summarise(study_labels, study_probs, threshold, seed),
    }


def _mean(values) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


def write_outputs(report: dict, out: Path, history: Path | None = None) -> Path:
    """Write report.json and the PNG plots into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    curves = report.pop("_curves", {})
    plots.plot_roc(
        {
            name: (
                labels,
                scores,
                report["fracture"][name].get("per_image", {}).get("auroc", np.nan),
            )
            for name, (labels, scores) in curves.items()
        },
        out / "roc.png",
    )
    bone = report["bone_type"]
    plots.plot_confusion(
        bone["confusion"],
        bone["classes"],
        "Bone type (Other = not recognised)",
        out / "confusion_bone_type.png",
    )
    for name, group in report["fracture"].items():
        if group.get("n") == 0:
            continue
        slug = name.replace(" ", "_").lower()
        plots.plot_confusion(
            group["per_image"]["confusion"],
            ["normal", "fractured"],
            f"{name}: fracture",
            out / f"confusion_{slug}.png",
        )
    if report.get("localisation"):
        localisation.plot_froc(
            {name: part["froc"] for name, part in report["localisation"].items()}, out / "froc.png"
        )
    if history and history.is_file():
        plots.plot_history(json.loads(history.read_text()), out / "training_curves.png")
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    return path


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(type(value))


def bone_type_sentence(bone: dict) -> str:
    """One sentence on bone-type accuracy and the 'not recognised' rate of other regions."""
    return (
        f"Bone type: best guess correct on {_pct(bone['best_guess_accuracy_3_bones'])} of "
        f"{bone['images_of_3_bones']} elbow/hand/shoulder images "
        f"({_pct(bone['recognised_and_correct_3_bones'])} recognised and correct); other regions "
        f"flagged 'not recognised': {_pct(bone['other_flagged_not_recognised'])} of "
        f"{bone['images_of_other_regions']}."
    )


def summary_lines(report: dict) -> list[str]:
    """A readable table of the main figures."""
    lines = [
        bone_type_sentence(report["bone_type"]),
        f"{'group':<17}{'images':>7}{'pos':>5}{'AUROC [95% CI]':>22}"
        f"{'kappa':>7}{'sens':>7}{'spec':>7}",
    ]
    for name, group in report["fracture"].items():
        if group.get("n") == 0:
            lines.append(f"{name:<17}{0:>7}")
            continue
        image = group["per_image"]
        low, high = image["auroc_ci"]
        lines.append(
            f"{name:<17}{image['n']:>7}{image['positives']:>5}"
            f"{image['auroc']:>9.3f} [{low:.2f}, {high:.2f}]"
            f"{image['kappa']:>7.2f}{image['sensitivity']:>7.2f}{image['specificity']:>7.2f}"
        )
    for name, part in report.get("localisation", {}).items():
        lines.append(
            f"Boxes, {name}: the top box hits a fracture on {_pct(part['top_box_hit_rate'])} of "
            f"{part['fractured_images']} fractured images; "
            f"{part['false_boxes_per_normal_image']:.2f} boxes per normal image"
        )
    return lines


def stress_report(records: list[Record], weights_dir, out: Path, seed: int = 0) -> dict:
    """Bone-type figures on the stress version of `records` (`training.data.stress`: tight joint
    views, rotations, borders, letters, exposure), rendered as PNGs into `out/stress_images`;
    fracture figures on its whole views (where the image's fracture label still holds) and, when
    the data has fracture boxes, on zoomed views that keep every box."""
    from training.data import augment, stress

    truths = localisation.truth_boxes(records)
    boxes = (
        None
        if truths is None
        else {Path(r.path).name: t for r, t in zip(records, truths, strict=True)}
    )
    items = stress.build_stress_set(records, augment.load_joint_marks(), seed, boxes)
    stressed = stress.write_stress_set(items, out / "stress_images")
    rows, failures = predict_all(stressed, weights_dir)
    views = {s.path: item for s, item in zip(stressed, items, strict=True)}

    def fracture_on(view: str) -> dict:
        kept = [
            (r, p)
            for r, p in rows
            if views[r.path].view == view and stress.keeps_fracture_label(views[r.path])
        ]
        return {name: fracture_report(group, seed) for name, group in fracture_groups(kept).items()}

    framed = [(r, p) for r, p in rows if views[r.path].view != "zoomed"]
    report = {
        "images": len(stressed),
        "failed": failures,
        "bone_type": bone_type_report(framed),
        "bone_type_joint_views": bone_type_report(
            [(r, p) for r, p in rows if views[r.path].view == "joint"]
        ),
        "fracture_whole_views": fracture_on("whole"),
    }
    if boxes is not None:
        report["fracture_zoomed_views"] = fracture_on("zoomed")
    return report


def joint_view_sentence(bone: dict) -> str:
    """Elbows and shoulders on the tight joint views: the stress version's nearest stand-in for
    other hospitals' elbow and shoulder studies."""
    parts = [
        f"{name.lower()}s {_pct(part['best_guess_right'])} best guess, "
        f"{_pct(part['recognised_and_right'])} recognised and right ({part['images']} views)"
        for name, part in bone["per_bone"].items()
        if part["images"]
    ]
    return "; ".join(parts) if parts else "none"


def fracture_sentence(fracture: dict) -> str:
    """Fracture AUROC of the hand, the three bones and every region, in one line."""
    parts = []
    for name in ("Hand", "all three bones", "all regions"):
        image = fracture.get(name, {}).get("per_image")
        if image:
            parts.append(f"{name} {image['auroc']:.3f} ({image['n']} images)")
    return "fracture AUROC " + ", ".join(parts)


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m training.report.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, required=True, help="MURA or FracAtlas folder")
    parser.add_argument("--dataset", choices=("auto", "mura", "fracatlas"), default="auto")
    parser.add_argument("--split", choices=("train", "val", "test"), default="test")
    parser.add_argument("--weights", type=Path, default=ROOT / "weights")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "evaluation")
    parser.add_argument("--seed", type=int, default=0, help="split seed (as in training)")
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--history", type=Path, help="Keras history JSON for training curves")
    parser.add_argument("--limit", type=int, default=0, help="evaluate at most N images")
    parser.add_argument(
        "--stress",
        action="store_true",
        help="also report the split's stress version (training/data/stress.py): bone type on every "
        "view, fracture on the whole views",
    )
    args = parser.parse_args(argv)
    kind = args.dataset if args.dataset != "auto" else datasets.detect_kind(args.data)
    splits, reports = datasets.load_splits(
        kind, args.data, args.seed, args.val_fraction, args.test_fraction
    )
    for load_report in reports:
        print(load_report.summary())
    records = splits[args.split][: args.limit or None]
    report = evaluate(records, args.weights, args.seed)
    report.update(data=kind, split=args.split, seed=args.seed, weights=str(args.weights))
    history = args.history or args.weights / "history_backbone.json"
    path = write_outputs(report, args.out, history)
    print("\n".join(summary_lines(report)))
    if args.stress:
        report["stress"] = stress_report(records, args.weights, args.out, args.seed)
        path.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
        print("Stress version: " + bone_type_sentence(report["stress"]["bone_type"]))
        joints = joint_view_sentence(report["stress"]["bone_type_joint_views"])
        print("Stress version, tight joint views: " + joints)
        whole = report["stress"]["fracture_whole_views"]
        print("Stress version, whole views: " + fracture_sentence(whole))
        if "fracture_zoomed_views" in report["stress"]:
            zoomed = fracture_sentence(report["stress"]["fracture_zoomed_views"])
            print("Stress version, zoomed views (every fracture box kept): " + zoomed)
    print(f"Report: {path}")
    if report["failed"]:
        print(f"{len(report['failed'])} images could not be read", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
