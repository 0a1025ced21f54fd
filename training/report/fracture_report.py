"""Choose the fracture stage's heads and thresholds on validation images, then report AUROC (95%
bootstrap intervals) and localisation on validation and, once, test, beside the shipped model.

Run: python -m training.report.fracture_report --data PATH --run DIR [--test]
Reads the run's `cell_logits_{val,test}.npz` and the prepared-image cache; writes
`DIR/report/fracture_report.json`, `choice.json` and FROC / ROC plots.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from core.boxes import boxes_from_map
from core.heads import sigmoid
from core.models import BONES
from training import metrics
from training.data import datasets
from training.data.fracture_data import open_cache
from training.networks.train_fracture import HEADS, numpy_pool
from training.report import localisation, plots

ROOT = Path(__file__).resolve().parent.parent.parent
BOX_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.96, 0.025), 3))
MIN_CLASS = 5  # fractured and normal validation images a bone needs for its own head/threshold


# ----------------------------------------------------------------------------- scores


def load_split(run: Path, cache, name: str) -> dict:
    """Cell logits of one split with each image's cache row and metadata."""
    with np.load(run / f"cell_logits_{name}.npz") as archive:
        logits, ids = archive["logits"], [str(i) for i in archive["image_ids"]]
    rows = cache.indices(ids)
    return {"logits": logits, "rows": rows, "meta": [cache.meta[i] for i in rows]}


def head_column(bone: str, choice: dict) -> int:
    """Column of the cell-logit map used for an image of `bone` ("shared" outside the bones)."""
    return HEADS.index(choice.get(bone, "shared")) if bone in BONES else 0


def scores_of(split: dict, choice: dict, pooling: str, r: float) -> np.ndarray:
    """Per-image fracture probability with each image's chosen head."""
    pooled = numpy_pool(split["logits"], pooling, r)
    columns = [head_column(m["bone"], choice) for m in split["meta"]]
    return sigmoid(pooled[np.arange(len(columns)), columns])


def maps_of(split: dict, choice: dict) -> list[np.ndarray]:
    """Per-image cell-probability maps with each image's chosen head."""
    return [
        sigmoid(logits[..., head_column(m["bone"], choice)])
        for logits, m in zip(split["logits"], split["meta"], strict=True)
    ]


def boxes_at(split: dict, maps: list[np.ndarray], cache, threshold: float) -> list:
    """Boxes (image pixels) of every image at `threshold`."""
    return [
        boxes_from_map(cells, cache.frame(row), tuple(m["image_shape"]), threshold)
        for cells, row, m in zip(maps, split["rows"], split["meta"], strict=True)
    ]


# ----------------------------------------------------------------------------- choices


def youden_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The probability threshold maximising sensitivity + specificity."""
    best, best_value = 0.5, -1.0
    for threshold in np.unique(scores):
        rates = metrics.binary_rates(labels, scores, float(threshold))
        value = rates["sensitivity"] + rates["specificity"]
        if value > best_value:
            best, best_value = float(threshold), value
    return best


POOLINGS = (("lse", 2.0), ("lse", 5.0), ("lse", 10.0), ("mean", 1.0))


def choose_pooling(val: dict, candidates=POOLINGS) -> tuple[str, float, dict]:
    """The pooling with the highest validation AUROC over all regions (shared head)."""
    labels = np.array([m["label"] for m in val["meta"]])
    figures = {
        f"{pooling} r={r:g}": metrics.auroc(labels, scores_of(val, {}, pooling, r))
        for pooling, r in candidates
    }
    best = max(range(len(candidates)), key=lambda k: np.nan_to_num(list(figures.values())[k]))
    return candidates[best][0], candidates[best][1], figures


def choose(val: dict, cache, pooling: str, r: float) -> dict:
    """On validation only: per bone, its own head or the shared one (its own only if its AUROC is
    at least the shared head's on enough images); per-bone
    fracture thresholds (Youden; three bones pooled when a bone has too few images); and the box
    threshold (best top-box hit rate with at most 0.5 boxes per normal image, all regions)."""
    labels = np.array([m["label"] for m in val["meta"]])
    bones = np.array([m["bone"] for m in val["meta"]])
    choice, details = {}, {}
    for bone in BONES:
        member = bones == bone
        own = scores_of(val, {bone: bone}, pooling, r)[member]
        shared = scores_of(val, {}, pooling, r)[member]
        auc_own, auc_shared = (
            metrics.auroc(labels[member], own),
            metrics.auroc(labels[member], shared),
        )
        positives = int(labels[member].sum())
        testable = positives >= MIN_CLASS and member.sum() - positives >= MIN_CLASS
        choice[bone] = bone if testable and auc_own >= auc_shared else "shared"
        details[bone] = {"val_auroc_own_head": auc_own, "val_auroc_shared_head": auc_shared}
    scores = scores_of(val, choice, pooling, r)
    in_bones = np.isin(bones, BONES)
    pooled_threshold = youden_threshold(labels[in_bones], scores[in_bones])
    thresholds = {}
    for bone in BONES:
        member = bones == bone
        positives = int(labels[member].sum())
        enough = positives >= MIN_CLASS and member.sum() - positives >= MIN_CLASS
        thresholds[bone] = (
            youden_threshold(labels[member], scores[member]) if enough else pooled_threshold
        )
        details[bone]["threshold_from"] = bone if enough else "three bones pooled"
    maps = maps_of(val, choice)
    truths = [m["boxes"] for m in val["meta"]]
    box_threshold, box_figures = localisation.choose_box_threshold(
        lambda t: boxes_at(val, maps, cache, t), truths, BOX_THRESHOLDS
    )
    return {
        "heads": choice,
        "thresholds": thresholds,
        "box_threshold": box_threshold,
        "val_localisation_at_box_threshold": box_figures,
        "details": details,
        "pooling": pooling,
        "pooling_r": r,
    }


# ----------------------------------------------------------------------------- report


def groups(meta: list[dict]) -> dict[str, np.ndarray]:
    """Boolean masks of the reported groups."""
    bones = np.array([m["bone"] for m in meta])
    return {
        "Hand": bones == "Hand",
        "Elbow": bones == "Elbow",
        "Shoulder": bones == "Shoulder",
        "three bones": np.isin(bones, BONES),
        "all regions": np.ones(len(meta), dtype=bool),
    }


def auroc_block(labels: np.ndarray, scores: np.ndarray, seed: int = 0) -> dict:
    """AUROC with its 95% bootstrap interval and the group's counts."""
    return {
        "n": int(len(labels)),
        "fractured": int(labels.sum()),
        "auroc": metrics.auroc(labels, scores),
        "auroc_ci": metrics.bootstrap_ci(metrics.auroc, labels, scores, seed=seed),
    }


def split_report(split: dict, cache, choice: dict, shipped: dict | None) -> dict:
    """AUROC per group (new model and shipped model), rates at the chosen thresholds, and
    localisation (all regions and three bones) at the chosen box threshold."""
    labels = np.array([m["label"] for m in split["meta"]])
    scores = scores_of(split, choice["heads"], choice["pooling"], choice["pooling_r"])
    maps = maps_of(split, choice["heads"])
    boxes = boxes_at(split, maps, cache, choice["box_threshold"])
    truths = [m["boxes"] for m in split["meta"]]
    report = {"auroc": {}, "shipped_160px_auroc": {}, "localisation": {}, "rates": {}}
    old = None
    if shipped is not None:
        old = np.array([shipped[m["image_id"]] for m in split["meta"]])
    for name, member in groups(split["meta"]).items():
        report["auroc"][name] = auroc_block(labels[member], scores[member])
        if old is not None:
            report["shipped_160px_auroc"][name] = auroc_block(labels[member], old[member])
    bones = np.array([m["bone"] for m in split["meta"]])
    for bone in BONES:
        member = bones == bone
        rates = metrics.binary_rates(labels[member], scores[member], choice["thresholds"][bone])
        report["rates"][bone] = {k: v for k, v in rates.items() if k != "confusion"}
        report["rates"][bone]["confusion"] = rates["confusion"]
    for name in ("all regions", "three bones"):
        member = groups(split["meta"])[name]
        chosen = [b for b, keep in zip(boxes, member, strict=True) if keep]
        real = [t for t, keep in zip(truths, member, strict=True) if keep]
        report["localisation"][name] = localisation.summary(chosen, real)
    report["froc"] = []  # exact: the boxes are rebuilt at each threshold (regions split apart)
    for threshold in BOX_THRESHOLDS:
        figures = localisation.summary(boxes_at(split, maps, cache, threshold), truths)
        report["froc"].append({"threshold": float(threshold), **figures})
    report["_curves"] = {"labels": labels, "scores": scores, "old": old}
    return report


def shipped_probabilities(records, weights: Path) -> dict[str, float]:
    """The shipped model's fracture probability per image id, through the app's engine: the
    record's own bone for the three bones, else the bone the engine finds most likely among
    them (as the app routes)."""
    from core import engine as engines
    from core.imaging import read_xray
    from training.report.per_change import routed_probability

    engine = engines.get_engine(weights)
    out = {}
    for record in records:
        raw = engine.run(read_xray(record.path))
        own = record.bone in BONES
        probability = raw.fracture_probabilities[record.bone] if own else routed_probability(raw)
        out[record.path.name] = float(probability)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--weights", type=Path, default=ROOT / "weights", help="shipped model")
    parser.add_argument("--pooling", default="auto", help="lse, mean or auto (best on val)")
    parser.add_argument("--r", type=float, default=5.0)
    parser.add_argument("--test", action="store_true", help="also report the test split")
    args = parser.parse_args(argv)
    from training.threads import configure_threads

    configure_threads(1)
    cache = open_cache(args.cache or args.run / "cache384")
    out = args.run / "report"
    out.mkdir(parents=True, exist_ok=True)
    val = load_split(args.run, cache, "val")
    if args.pooling == "auto":
        pooling, r, tried = choose_pooling(val)
        print(f"pooling on validation: {tried} -> {pooling} r={r:g}", flush=True)
    else:
        pooling, r, tried = args.pooling, args.r, {}
    choice = {**choose(val, cache, pooling, r), "pooling_tried_on_val": tried}
    (out / "choice.json").write_text(json.dumps(choice, indent=1, default=float))
    splits, _ = datasets.load_splits("fracatlas", args.data)
    report = {"choice": choice}
    curves, froc = {}, {}
    for name in ("val", "test") if args.test else ("val",):
        shipped_path = out / f"shipped160_{name}.json"
        if not shipped_path.is_file():
            shipped_path.write_text(json.dumps(shipped_probabilities(splits[name], args.weights)))
        shipped = json.loads(shipped_path.read_text())
        split = val if name == "val" else load_split(args.run, cache, name)
        report[name] = split_report(split, cache, choice, shipped)
        raw = report[name].pop("_curves")
        labels, member = raw["labels"], groups(split["meta"])
        for group in ("Hand", "three bones", "all regions"):
            keep = member[group]
            curves[f"{name} {group} 384"] = (
                labels[keep],
                raw["scores"][keep],
                report[name]["auroc"][group]["auroc"],
            )
            curves[f"{name} {group} shipped 160"] = (
                labels[keep],
                raw["old"][keep],
                report[name]["shipped_160px_auroc"][group]["auroc"],
            )
        froc[name] = report[name]["froc"]
        plots.plot_roc(
            {k: v for k, v in curves.items() if k.startswith(name)}, out / f"roc_{name}.png"
        )
    localisation.plot_froc(froc, out / "froc.png")
    (out / "fracture_report.json").write_text(json.dumps(report, indent=1, default=_json))
    print(json.dumps(headline(report), indent=1, default=_json))
    return 0


def headline(report: dict) -> dict:
    """The figures to quote: AUROC (interval) per group, old vs new, and localisation."""
    lines = {}
    for name in ("val", "test"):
        if name not in report:
            continue
        part = report[name]
        lines[name] = {group: _auroc_line(part, group) for group in part["auroc"]}
        lines[name]["localisation"] = part["localisation"]
    lines["choice"] = {k: report["choice"][k] for k in ("heads", "thresholds", "box_threshold")}
    return lines


def _auroc_line(part: dict, group: str) -> str:
    new, old = part["auroc"][group], part["shipped_160px_auroc"][group]
    low, high = new["auroc_ci"]
    return (
        f"{new['auroc']:.3f} [{low:.3f}, {high:.3f}] vs shipped {old['auroc']:.3f} "
        f"[{old['auroc_ci'][0]:.3f}, {old['auroc_ci'][1]:.3f}] "
        f"(n={new['n']}, fractured {new['fractured']})"
    )


def _json(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
