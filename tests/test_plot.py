"""distillkit plot: one figure per loss term and validation metric, one line per run, data as metrics.jsonl."""
import json
import os
import sys

import pytest

from distillkit.cli import main

pytest.importorskip("matplotlib")

SINGLE = [{"epoch": e, "lr": 0.1, "loss": 2.0 - e * 0.5, "loss/org": 1.5 - e * 0.4, "loss/kd": 0.5 - e * 0.1,
           "images_per_s": 900.0, "val_top1": 40.0 + 10 * e, "val_top5": 80.0 + e} for e in range(3)]
STAGED = [{"epoch": e, "stage": 1 if e < 2 else 2, "lr": 0.01, "loss": 3.0 - e * 0.25, "loss/org": 2.0 - e * 0.125,
           "loss/fitnet": 1.0 - e * 0.125, "val_top1": 30.0 + 5 * e, "val_miou": 0.2 + 0.05 * e} for e in range(4)]


def write_run(path, rows):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "metrics.jsonl"), "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    return str(path)


def curves(figure):
    """{label: (x, y)} of a figure's run lines (the dotted stage marks carry no label)."""
    (axes,) = figure.axes
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in axes.lines
            if not line.get_label().startswith("_")}


def test_one_figure_per_quantity_with_each_runs_values(tmp_path):
    from distillkit.tools.plot import make_figures

    runs = [write_run(tmp_path / "kd", SINGLE), write_run(tmp_path / "fitnet_two_stages", STAGED)]
    figures = make_figures(runs)
    assert list(figures) == ["loss", "loss/fitnet", "loss/kd", "loss/org", "val_miou", "val_top1", "val_top5"]
    for key, figure in figures.items():
        expected = {name: ([r["epoch"] for r in rows if key in r], [r[key] for r in rows if key in r])
                    for name, rows in (("kd", SINGLE), ("fitnet_two_stages", STAGED)) if key in rows[0]}
        assert curves(figure) == expected, key
        assert figure.axes[0].get_title() == key
    stage_marks = [line.get_xdata()[0] for line in figures["loss"].axes[0].lines if line.get_label().startswith("_")]
    assert stage_marks == [1.5]  # stage 2 begins at epoch 2


def test_cli_writes_a_png_per_quantity_to_out(tmp_path, capsys):
    runs = [write_run(tmp_path / "a", SINGLE), write_run(tmp_path / "b", SINGLE[:2])]
    out = tmp_path / "curves"
    assert main(["plot", *runs, "--out", str(out)]) == 0
    names = ["loss.png", "loss_kd.png", "loss_org.png", "val_top1.png", "val_top5.png"]
    assert sorted(os.listdir(out)) == names
    for name in names:
        assert open(out / name, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out.count("wrote ") == len(names)
    assert main(["plot", runs[0]]) == 0  # one run, no --out: beside its metrics.jsonl
    assert set(names) <= set(os.listdir(runs[0]))


def test_runs_of_the_same_name_are_told_apart_by_their_path(tmp_path):
    from distillkit.tools.plot import make_figures

    runs = [write_run(tmp_path / "x" / "run", SINGLE), write_run(tmp_path / "y" / "run", SINGLE)]
    assert sorted(curves(make_figures(runs)["loss"])) == sorted(os.path.normpath(r) for r in runs)


def test_errors_are_one_paragraph(tmp_path, capsys, monkeypatch):
    assert main(["plot", str(tmp_path)]) == 2
    assert "holds no metrics.jsonl" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert main(["plot", write_run(tmp_path / "a", SINGLE)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'distillkit[plot]'" in err and len(err.strip().splitlines()) == 1
