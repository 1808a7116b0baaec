"""The README results table is built only from evaluation files, each row beside its anchor."""

import json

from train.report import main


def test_report_lists_measured_values_beside_anchors(tmp_path, capsys):
    for name, entries in {
        "vae": [{"name": "IS-NLL (k=5000)", "value": 87.123}],
        "socvae": [{"name": "CLL (2 quadrants given)", "value": 46.75}],
        "ae": [{"name": "Classifier-feature FD", "value": 611.2}],
    }.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "eval_results.json").write_text(json.dumps(entries))
    (tmp_path / "not_evaluated").mkdir()
    assert main([str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| model | metric | measured | anchor |" and len(lines) == 5
    assert "| `vae` | IS-NLL (k=5000) | 87.12 | 86.76 (IWAE paper" in lines[4]
    assert "| `socvae` | CLL (2 quadrants given) | 46.75 | 51.0 (Pyro's CVAE) |" in lines
    assert "| `ae` | Classifier-feature FD | 611.2 |  |" in lines
    assert main([str(tmp_path), "--only", "CLL"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_report_shows_the_standard_error_when_recorded(tmp_path, capsys):
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "eval_results.json").write_text(json.dumps([
        {"name": "IS-NLL (k=5000)", "value": 89.9154, "details": {"std_error": 0.246}},
        {"name": "Prior MMD", "value": 0.0025, "details": {"num_images": 10}}]))
    assert main([str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("| `vae` | IS-NLL (k=5000) | 89.92 ± 0.25 (s.e.) | 86.76")
    assert lines[3] == "| `vae` | Prior MMD | 0.0025 |  |"
