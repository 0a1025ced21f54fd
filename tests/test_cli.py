"""The command line: a table or JSON lines, every input reported, non-zero exit on failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import predictions
from tests.factories import write_image

ROOT = Path(__file__).resolve().parent.parent


def test_table_for_a_folder_skips_hidden_files(tiny_weights, tmp_path, capsys):
    write_image(tmp_path / "in" / "a.png")
    write_image(tmp_path / "in" / "b.jpg")
    (tmp_path / "in" / "._a.png").write_bytes(b"resource fork")
    code = predictions.main([str(tmp_path / "in"), "--weights", str(tiny_weights)])
    out = capsys.readouterr().out
    assert code == 0
    assert "a.png" in out and "b.jpg" in out and "._a.png" not in out
    assert "2 analysed, 0 failed" in out


def test_json_lines_and_failure_exit_code(tiny_weights, tmp_path, capsys):
    good = write_image(tmp_path / "good.png")
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    code = predictions.main([str(bad), str(good), "--json", "--weights", str(tiny_weights)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    assert lines[0]["error"] == "UnsupportedFormatError"
    assert lines[1]["path"] == str(good)
    assert lines[1]["label"] in ("fractured", "normal", "not recognised")


def test_study_and_heatmaps(tiny_weights, tmp_path, capsys):
    study = tmp_path / "study1_positive"
    for name in ("image1.png", "image2.png"):
        write_image(study / name)
    out_dir = tmp_path / "heat"
    code = predictions.main(
        [str(study), "--study", "--heatmap", str(out_dir), "--weights", str(tiny_weights)]
    )
    assert code == 0
    assert "1 analysed" in capsys.readouterr().out
    assert sorted(p.name for p in out_dir.iterdir()) == ["image1_gradcam.png", "image2_gradcam.png"]


def test_runs_as_a_script(tiny_weights, tmp_path):
    image = write_image(tmp_path / "x.png")
    missing = tmp_path / "missing.png"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [
            sys.executable,
            "predictions.py",
            str(image),
            str(missing),
            "--weights",
            str(tiny_weights),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 1
    assert "was not found" in done.stdout and "x.png" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
