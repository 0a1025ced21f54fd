"""Write the model card: put an evaluation report into the manifest and into MODEL_CARD.md.

python -m training.report.model_card --report runs/evaluation/report.json [--weights weights]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core import manifest as manifest_io
from core.models import BONES
from training.export.fracture import ancestry
from training.export.litert import network_backbone
from training.report.evaluate import bone_type_sentence, fracture_sentence, joint_view_sentence

ROOT = Path(__file__).resolve().parent.parent.parent
FRACATLAS = (
    "FracAtlas (Abedeen, I., Rahman, M.A., Prottyasha, F.Z. et al., Scientific Data 10, 521 "
    "(2023), "
    "doi:10.6084/m9.figshare.22363012), CC BY 4.0; region labels by this project "
    "and joint marks (training/data/fracatlas_regions.csv, training/data/joint_marks.csv)"
)
WARNING = (
    "Demonstration models trained on FracAtlas images on a 2-core CPU: the fracture and bone-type "
    "networks were fine-tuned from ImageNet MobileNet v1 weights (Apache-2.0, weights/NOTICE.md). "
    "The hand's fracture verdict comes from a hand model (the all-region fracture map fitted "
    "further on hands); elbows and shoulders share the all-region model: FracAtlas holds too few "
    "elbow and shoulder fractures for models of their own. Not validated for clinical use. "
    "Decision support only: a radiologist must confirm every finding. Retrain on MURA v1.1 for "
    "real use (see README)."
)


def _ci(metric: dict, name: str) -> str:
    value = metric.get(name)
    low, high = metric.get(f"{name}_ci", (float("nan"), float("nan")))
    if value is None or value != value:
        return "n/a"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


def metric_lines(report: dict) -> list[str]:
    """Short lines for the app's info window."""
    lines = [bone_type_sentence(report["bone_type"])]
    for name in (*BONES, "all three bones"):
        group = report["fracture"].get(name, {})
        if not group or group.get("n") == 0:
            continue
        image = group["per_image"]
        lines.append(
            f"{name}: fracture AUROC {_ci(image, 'auroc')}, sensitivity "
            f"{_ci(image, 'sensitivity')}, specificity {_ci(image, 'specificity')} "
            f"(n={image['n']}, {image['positives']} fractured)"
        )
    return lines


def lineage(info: dict) -> list[dict]:
    """The earlier runs the backbone started from, oldest first, each with its command."""
    steps, source = [], info.get("init_from")
    while source and source.get("command"):
        note = f"init: {source.get('init')}, {source.get('training_minutes', '?')} min"
        steps.insert(0, {"command": source["command"], "note": note})
        source = source.get("init_from")
    return steps


def network_line(name: str, entry: dict, heads: dict) -> str:
    """One network: what it is, its input, storage, parity, training time and its heads."""
    info = entry.get("provenance", {})
    users = ", ".join(key for key, head in heads.items() if head["network"] == name)
    tried = entry.get("parity", {}).get("test_split", {})
    chosen = "".join(
        f"; {quantization} vs float32 on test: bone-type answers agree on "
        f"{report['bone_type_agreement']:.2%}{speed_words(report, quantization)}"
        for quantization, report in tried.items()
    )
    when = f" {info['date']}" if info.get("date") else ""
    where = f" on {info['machine']}" if info.get("machine") else ""
    minutes = info.get("training_minutes", "?")
    runs = averaged_runs(info)
    if runs:  # the mean of checkpoints of runs that trained side by side
        minutes = " + ".join(str(run["minutes"]) for run in runs)
    earlier = [  # went on from other runs' checkpoints: their minutes first
        str(run["training_minutes"])
        for run in ancestry(info.get("started_from"))
        if run.get("training_minutes") is not None
    ]
    if earlier:
        minutes = " + ".join([*earlier, str(minutes)])
    return (
        f"- Network `{name}` ({users}): {architecture(entry)}, cut at "
        f"`{entry.get('cut', '?')}`; input {entry['input_size']} px; feature map "
        f"{' x '.join(map(str, entry['feature_shape']))}; runs as {entry['quantization']}"
        f"{chosen}. Init: {info.get('init', '?')}; trained{when}{where} in {minutes} min."
    )


def speed_words(report: dict, quantization: str) -> str:
    """', one run 14.9 ms against 28.7 ms in float32' when `--choose` timed the variant."""
    times = report.get("latency_ms")
    if not times:
        return ""
    return f", one run {times[quantization]} ms against {times['float32']} ms in float32"


def architecture(entry: dict) -> str:
    """The network's family, from the manifest (or its training provenance)."""
    backbone = network_backbone(entry)
    named = {"mobilenet_v1": "MobileNet v1", "mobilenet_v2": "MobileNet v2"}.get(backbone)
    shape = entry.get("feature_shape") or [0]
    if named and shape[0] and entry.get("input_size", 0) / shape[0] == 16:
        named += " (atrous last block, stride 16)"
    return entry.get("architecture") or named or "ResNet50"


def verdict_sentence(heads: dict) -> str:
    """Which networks each bone's fracture verdict reads (its head plus any heads it adds), and
    which model answers for each bone."""
    head = heads[manifest_io.fracture_key(BONES[0])]
    networks = [head["network"], *(heads[key]["network"] for key in head.get("plus_heads", []))]
    copies = head.get("hospital_copies")
    fitted = (
        f" It was fitted on every training image and {copies} changed view(s) of each (rotation, "
        "exposure, blur or noise, letters, borders), so that other hospitals' exposure moves "
        "it less."
        if copies
        else ""
    )
    if len(networks) > 1:
        return (
            "the verdict adds the image logits of heads on networks "
            + " and ".join(f"`{name}`" for name in networks)
            + f" (one linear head over their pooled features).{fitted}"
        )
    pooled = (
        f" (the log-sum-exp of its cells' logits, r = {head.get('pooling_r', 1.0):g})"
        if head.get("pooling") == "lse"
        else ""
    )
    models = "; ".join(
        f"{bone}: {heads[manifest_io.fracture_key(bone)]['answered_by']}"
        for bone in BONES
        if heads[manifest_io.fracture_key(bone)].get("answered_by")
    )
    return f"the verdict is the image score of network `{networks[0]}`'s fracture map" + (
        f"{pooled}.{fitted}" + (f" Models: {models}." if models else "")
    )


def orientation_lines(heads: dict) -> list[str]:
    """What the orientation head does, if there is one."""
    head = heads.get("orientation")
    if not head:
        return []
    checked = head.get("validation", {})
    accuracy = (
        f"; it names the turn of {checked['accuracy']:.1%} of validation views" if checked else ""
    )
    return [
        f"- Orientation: a head on `{head['network']}` tells when an image is stored a quarter or "
        "half turn away from the orientation the fracture networks were trained on; when it is "
        f"at least {head['threshold']:.0%} sure, they see the image turned back{accuracy}."
    ]


def polarity_lines(heads: dict) -> list[str]:
    """What the polarity head does, if there is one."""
    head = heads.get("polarity")
    if not head:
        return []
    checked = head.get("validation", {})
    accuracy = (
        f"; it tells inverted from as stored on {checked['accuracy']:.1%} of validation views"
        if checked
        else ""
    )
    return [
        f"- Polarity: a head on `{head['network']}` tells when an image's grey levels are "
        "reversed (bone dark, background light); when it is at least "
        f"{head['threshold']:.0%} sure, the fracture networks see them reversed back{accuracy}."
    ]


def bone_type_head_lines(heads: dict) -> list[str]:
    """How the bone-type head was refitted after its network's training, if it was."""
    refit = heads["bone_type"].get("provenance", {}).get("head_refit")
    if not refit:
        return []
    return [
        f"- The bone-type head was refitted on the network's features of {refit['views']} "
        f"augmented training views (`{refit['command']}`, {refit['minutes']} min); the recognition "
        "threshold was chosen again then."
    ]


def averaged_runs(info: dict) -> list[dict]:
    """The runs whose checkpoints were averaged (`averaged_from`), in order: each run's folder,
    its number of checkpoints, their first and last epoch and its longest training minutes."""
    runs: dict[str, dict] = {}
    for source in info.get("averaged_from") or []:
        path = Path(source["checkpoint"])
        folder = path.parent.parent if path.parent.name == "epochs" else path.parent
        run = runs.setdefault(folder.name, {"run": folder.name, "epochs": [], "minutes": 0.0})
        run["epochs"].append(source.get("epoch"))
        run["minutes"] = max(run["minutes"], source.get("minutes", 0.0))
    return list(runs.values())


def averaged_words(runs: list[dict]) -> str:
    """E.g. 'the mean of 5 checkpoints: epochs 1-3 of run a (9.2 min) and epochs 1-2 of run b'."""
    count = sum(len(run["epochs"]) for run in runs)
    parts = [
        f"epochs {min(run['epochs'])}-{max(run['epochs'])} of run {run['run']} "
        f"({run['minutes']} min)"
        for run in runs
    ]
    return f"the mean of {count} checkpoints: " + " and ".join(parts)


def fracture_training(networks: dict) -> str:
    """How long the fracture network trained, from its provenance."""
    info = networks.get("fracture", {}).get("provenance", {})
    kept = info.get("training_minutes", "?")
    total = info.get("run_minutes", kept)
    number = info.get("epoch") or info.get("best_epoch")  # older manifests: best_epoch only
    epoch = f", epoch {number}" if number else ""
    parent = info.get("started_from")
    runs = averaged_runs(info)
    if parent and parent.get("training_minutes") is not None and runs:
        went_on = "one run" if len(runs) == 1 else f"{len(runs)} runs side by side"
        return (
            f"it trained {parent['training_minutes']} min on one thread of a shared CPU "
            f"(run {parent.get('run')}, {parent.get('epoch')} epochs), then {went_on} went on "
            f"from that run's checkpoint; the weights kept are {averaged_words(runs)}"
        )
    if parent and parent.get("training_minutes") is not None:
        first, *later = ancestry(parent)
        steps = "".join(
            f", then {run['training_minutes']} min more from its checkpoint (run {run.get('run')}, "
            f"epoch {run.get('epoch')})"
            for run in later
        )
        which = "that second run" if not later else "that last run"
        return (
            f"it trained {first['training_minutes']} min on one thread of a shared CPU "
            f"(run {first.get('run')}, {first.get('epoch')} epochs){steps}, then went on from "
            f"that run's checkpoint for {total} min more; the weights kept are from {kept} min "
            f"into {which}{epoch}"
        )
    return (
        f"it trained {total} min on one thread of a shared CPU; the weights kept are from "
        f"{kept} min{epoch}"
    )


def split_regions(split: dict) -> dict:
    """A split's images per region ({region: {images, positive}}), from either form a network's
    provenance records: {"images": N, "regions": {...}} or the regions alone."""
    if "regions" in split:
        return split["regions"]
    return {name: count for name, count in split.items() if isinstance(count, dict)}


def markdown(raw: dict, report: dict) -> str:
    """The model card as Markdown."""
    networks, heads = raw["networks"], raw["heads"]
    info = next(
        (e["provenance"] for e in networks.values() if e.get("provenance", {}).get("splits")), {}
    )
    splits = info.get("splits", {})
    out = [
        "# Model card: default weights",
        "",
        f"**{WARNING}**",
        "",
        "## Models",
        "The app runs each network below once per image with LiteRT; small linear heads read "
        "its feature map.",
        "",
    ]
    out += [network_line(name, entry, heads) for name, entry in networks.items()]
    out += [
        "- Bone type: Elbow / Hand / Shoulder / Other; not recognised when 'Other' wins or the "
        f"top probability is under {raw['recognition_threshold']} "
        f"({raw.get('recognition_threshold_note', 'fixed')}).",
        *bone_type_head_lines(heads),
        f"- Fracture: one head per bone; {verdict_sentence(heads)} 'Fractured' at the "
        "threshold in the manifest.",
        *orientation_lines(heads),
        *polarity_lines(heads),
        "",
        "## Data",
        f"{FRACATLAS}.",
        "Split by proxy patient (blocks of 20 consecutive FracAtlas ids; FracAtlas has no patient "
        f"ids), seed {info.get('split_seed', 0)}. Images per split and region (fractured):",
        "",
        "| region | " + " | ".join(splits) + " |",
        "|---|" + "---|" * len(splits),
    ]
    regions = sorted({r for split in splits.values() for r in split_regions(split)})
    for region in regions:
        cells = []
        for split in splits.values():
            count = split_regions(split).get(region, {"images": 0, "positive": 0})
            cells.append(f"{count['images']} ({count['positive']})")
        out.append(f"| {region} | " + " | ".join(cells) + " |")
    out += [
        "",
        "Elbow, hand and shoulder are the app's bones; every other region is an 'Other' example "
        "for the bone-type head and a fracture example for the all-region fracture model.",
        "",
        "## Training commands",
    ]
    commands: dict[str, list[str]] = {}
    for key, entry in [*networks.items(), *heads.items()]:
        command = entry.get("provenance", {}).get("command")
        if command and key not in commands.setdefault(command, []):
            commands[command].append(key)
    out += [f"- `{step['command']}` ({step['note']}), then:" for step in lineage(info)]
    for command, keys in commands.items():
        out.append(f"- `{command}` (wrote: {', '.join(keys)})")
    out += [
        "",
        "How these outputs were assembled into `weights/` (int8 or float32 chosen per network): "
        "the README's 'Rebuilding the default weights' and the manifest's `assembly`. Training "
        "time is per command, on the machine named above.",
    ]
    out += ["", f"## Results on the held-out test split ({report.get('split', 'test')})", ""]
    out += [f"- {line}" for line in metric_lines(report)]
    if report.get("stress"):
        out.append(
            f"- Stress version of the split: {bone_type_sentence(report['stress']['bone_type'])}"
        )
        if report["stress"].get("bone_type_joint_views"):
            joints = joint_view_sentence(report["stress"]["bone_type_joint_views"])
            out.append(
                "- Stress version, tight elbow and shoulder views (the nearest stand-in here for "
                f"other hospitals' studies): {joints}"
            )
        if report["stress"].get("fracture_whole_views"):
            whole = fracture_sentence(report["stress"]["fracture_whole_views"])
            out.append(f"- Stress version, whole views (turned, re-exposed, framed): {whole}")
        if report["stress"].get("fracture_zoomed_views"):
            zoomed = fracture_sentence(report["stress"]["fracture_zoomed_views"])
            out.append(
                "- Stress version, zoomed views (tighter framing, every fracture box kept, "
                f"then turned, re-exposed, framed): {zoomed}"
            )
    for name, part in report.get("localisation", {}).items():
        out.append(
            f"- Fracture boxes, {name}: the top box hits a true box on "
            f"{part['top_box_hit_rate']:.0%} of {part['fractured_images']} fractured images; "
            f"{part['false_boxes_per_normal_image']:.2f} boxes per normal image"
        )
    choice = raw.get("quantization_choice")
    if choice:
        combined = choice["chosen_combination_vs_all_float32"]
        shipped = ", ".join(f"`{name}` {kind}" for name, kind in choice["chosen"].items())
        out += [
            "",
            "## int8, dynamic-int8 or float32",
            f"Rule: {choice['rule']}. Shipped: {shipped}. The shipped combination against all "
            f"float32 on {combined['images']} test images: bone-type answers agree on "
            f"{combined['bone_type_agreement']:.1%}, fracture probability differs by median "
            f"{combined['fracture_probability_abs_diff_median']:.3f} (max "
            f"{combined['fracture_probability_abs_diff_max']:.3f}).",
        ]
        for name, entry in networks.items():
            for quantization, test in entry.get("parity", {}).get("test_split", {}).items():
                aurocs = "; ".join(
                    f"{group} {v['float32']:.3f} vs {v['quantized']:.3f}"
                    for group, v in test["fracture_auroc"].items()
                )
                verdict = "earns its place" if test["earns_its_place"] else "does not"
                out.append(
                    f"- `{name}` alone in {quantization} ({verdict}): bone-type answers agree on "
                    f"{test['bone_type_agreement']:.2%}; fracture AUROC float32 vs "
                    f"{quantization}: {aurocs}."
                )
    out += [
        "",
        "Per-image and per-study figures, confusion matrices: `report.json` of "
        "`python -m training.report.evaluate` (intervals: 95% bootstrap, 1,000 resamples).",
        "",
    ]
    bone = report["bone_type"]
    out += [
        "Bone-type confusion (rows true, columns shown; Other = not recognised):",
        "",
        "| | " + " | ".join(bone["classes"]) + " |",
        "|---|" + "---|" * len(bone["classes"]),
    ]
    for name, row in zip(bone["classes"], bone["confusion"], strict=True):
        out.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    out += [
        "",
        "Plots (ROC curves, confusion matrices, the boxes' FROC): `docs/evaluation/`.",
        "",
        "## What would close the gap to the targets",
        "- Larger pretrained networks: ResNet50 from ImageNet (`--backbone resnet50 --init "
        "imagenet`, on a machine with internet), or radiograph pre-training.",
        "- More data of the rare groups (elbows, fractured shoulders): MURA v1.1 has about "
        "5,000 elbow and 8,000 shoulder images.",
        "- More fractured elbows and shoulders, and images from other hospitals: the 384-px "
        f"fracture map ({fracture_training(networks)}) gives the boxes and the verdict; "
        "its test figures for the three bones rest on 26 fractured images, 2 of them elbows and "
        "1 a shoulder, and on the stress views (the stand-in for other hospitals) the AUROC over "
        "all regions is lower than on FracAtlas as stored (docs/evaluation/SELECTION.md, stops "
        "19 and 21).",
        "- More 'other region' examples (wrist, forearm, finger views) for the 'not recognised' "
        "answer.",
    ]
    out += [
        "",
        "## Limits",
        "- " + WARNING,
        "- FracAtlas comes from one hospital group; images often show a longer stretch of the "
        "limb than MURA's. Expect lower accuracy on other sources.",
        "- Few elbows and shoulders (and very few fractured shoulders): their intervals are "
        "wide; treat their figures as indicative only.",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Merge the report into the manifest's `model_card` and write MODEL_CARD.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--weights", type=Path, default=ROOT / "weights")
    args = parser.parse_args(argv)
    report = json.loads(args.report.read_text())
    raw = manifest_io.load_raw(args.weights)
    raw["model_card"] = {
        "summary": WARNING,
        "attribution": FRACATLAS,
        "metrics_summary": metric_lines(report),
        "evaluation": {
            "split": report.get("split"),
            "bone_type": report["bone_type"],
            "fracture": report["fracture"],
        },
    }
    manifest_io.write_raw(args.weights, raw)
    (args.weights / "MODEL_CARD.md").write_text(markdown(raw, report))
    print(f"Updated {args.weights / 'manifest.json'} and {args.weights / 'MODEL_CARD.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
