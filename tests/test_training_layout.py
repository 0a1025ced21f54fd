"""training/ by stage: imports run one way, from later stages to earlier ones, and the app never
imports training (read from the source, nothing imported)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("data", "networks", "export", "heads", "report")  # earlier first
SHARED = {"training.metrics", "training.threads"}  # any stage may use them; they import no stage
# The trainers end a run by handing their network to the export stage's writer.
TRAINERS_EXPORT = {
    ("training.networks.train", "training.export.litert"),
    ("training.networks.train_bone_type", "training.export.litert"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every module `path` imports (at the top or inside a function), `from a import b` as a.b
    where a.b is a module."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            for alias in node.names:
                candidate = ROOT.joinpath(*node.module.split("."), alias.name)
                if candidate.with_suffix(".py").is_file() or candidate.is_dir():
                    names.add(f"{node.module}.{alias.name}")
    return names


def stage_of(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 and parts[1] in STAGES else None


def test_every_training_module_sits_in_a_stage_or_is_shared():
    loose = {
        module_name(path) for path in (ROOT / "training").glob("*.py") if path.name != "__init__.py"
    }
    assert loose == SHARED


def test_training_imports_run_from_later_stages_to_earlier_ones():
    backwards = []
    for path in sorted((ROOT / "training").rglob("*.py")):
        me = module_name(path)
        for other in imported(path):
            if not other.startswith("training.") or other == "training":
                continue
            if me in SHARED:
                backwards += [(me, other)] if other not in SHARED else []
            elif other not in SHARED and stage_of(other) > stage_of(me):
                backwards.append((me, other))
    assert set(backwards) <= TRAINERS_EXPORT, sorted(set(backwards) - TRAINERS_EXPORT)


def test_head_fitters_share_helpers_through_linear_not_each_other():
    for path in (ROOT / "training" / "heads").glob("fit_*.py"):
        siblings = {m for m in imported(path) if m.startswith("training.heads.fit_")}
        assert not siblings, f"{path.name} imports {siblings}"


def test_the_app_never_imports_training():
    app_files = [ROOT / "main.py", ROOT / "predictions.py"]
    app_files += [*(ROOT / "core").rglob("*.py"), *(ROOT / "app").rglob("*.py")]
    for path in app_files:
        assert not {m for m in imported(path) if m.split(".")[0] == "training"}, path
