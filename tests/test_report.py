"""The README results table is built only from evaluation files, each row beside its anchor."""

from train.report import main
from vae_models.export import EvalResult, write_eval_results


def test_report_lists_measured_values_beside_anchors(tmp_path, capsys):
    for name, entries in {
        "vae": [EvalResult("IS-NLL (k=5000)", "nll", 87.123)],
        "socvae": [EvalResult("CLL (2 quadrants given)", "cll", 46.75)],
        "ae": [EvalResult("Classifier-feature FD", "classifier_fd", 611.2)],
    }.items():
        write_eval_results(tmp_path / name, entries)
    (tmp_path / "not_evaluated").mkdir()
    assert main([str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| model | metric | measured | anchor |" and len(lines) == 5
    assert "| `vae` | IS-NLL (k=5000) | 87.12 | 86.76 (IWAE paper" in lines[4]
    assert "| `socvae` | CLL (2 quadrants given) | 46.75 | 51.0 (Pyro's CVAE) |" in lines
    assert "| `ae` | Classifier-feature FD | 611.2 |  |" in lines
    assert main([str(tmp_path), "--only", "CLL"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_report_reads_the_bundled_pre_schema_files_and_rejects_malformed_ones(tmp_path, capsys):
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "eval_results.json").write_text('[{"name": "IS-NLL (k=5000)", "type": "nll", "value": 89.9}]')
    assert main([str(tmp_path)]) == 0
    assert "| `vae` | IS-NLL (k=5000) | 89.9 | 86.76" in capsys.readouterr().out
    (tmp_path / "vae" / "eval_results.json").write_text('[{"name": "IS-NLL (k=5000)", "value": "high"}]')
    assert main([str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err


def test_report_shows_the_standard_error_when_recorded(tmp_path, capsys):
    write_eval_results(tmp_path / "vae", [
        EvalResult("IS-NLL (k=5000)", "nll", 89.9154, details={"std_error": 0.246}),
        EvalResult("Prior MMD", "mmd", 0.0025, details={"num_images": 10})])
    assert main([str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("| `vae` | IS-NLL (k=5000) | 89.92 ± 0.25 (s.e.) | 86.76")
    assert lines[3] == "| `vae` | Prior MMD | 0.0025 |  |"


def test_spread_gives_the_mean_and_sample_sd_of_each_metric_over_repeated_runs(tmp_path, capsys):
    for draw, error in enumerate((4.0, 5.0, 9.0)):
        write_eval_results(tmp_path / f"draw-{draw}", [EvalResult("Semi-supervised test error", "error", error),
                                                        EvalResult("Prior MMD", "mmd", 0.01 * (draw + 1))])
    write_eval_results(tmp_path / "other", [EvalResult("Prior MMD", "mmd", 0.04)])
    assert main([str(tmp_path), "--spread", "--only", "Semi"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["| metric | runs | mean ± s.d. |", "|---|---|---|", "| Semi-supervised test error | 3 | 6 ± 2.6 |"]
    assert main([str(tmp_path), "--spread"]) == 0
    assert "| Prior MMD | 4 | 0.025 ± 0.013 |" in capsys.readouterr().out  # (0.01 .. 0.04): s.d. 0.0129
