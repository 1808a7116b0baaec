"""`train.evaluate`'s records recomputed with the library functions they claim to be (vae_models.ais, .quadrature,
.metrics): the same digits, labels, seeds, settings and batches give the same numbers; its metric table, its
Python call and its command line, and the merging of partial results."""

import dataclasses
import math
import shlex
from pathlib import Path

import pytest
import torch

from train import evaluate as evaluation
from train.evaluate import EvalError, EvalSettings
from vae_models import build_model, load_model
from vae_models.ais import ais_log_likelihood, bdmc, simulate
from vae_models.export import EvalResult, merge_eval_results, read_eval_results
from tests.paths import MNIST_DIR

ROOT = Path(__file__).resolve().parents[1]
AIS = {"num_steps": 4, "num_chains": 2, "leapfrog_steps": 2, "schedule": "linear"}
WITH_AIS = evaluation.DEFAULT_METRICS + ["ais"]  # what --ais computes


def ais_settings(limit: int | None = 6, seed: int = 3, start: str = "prior") -> EvalSettings:
    return EvalSettings(ais_steps=4, ais_chains=2, ais_leapfrog=2, ais_schedule="linear", ais_batch=4, bdmc_digits=11,
                        seed=seed, ais_limit=limit, ais_start=start)


@pytest.fixture(scope="module")
def digits():
    _, binary, labels = evaluation.test_set(str(MNIST_DIR), 10, seed=0)
    return binary, labels


@pytest.mark.parametrize("name,config,labelled,components,start", [
    ("vae", {}, False, 0, "prior"),
    ("cvae", {}, True, 10, "prior"),
    ("aae", {"prior": "mixture10"}, False, 10, "prior"),
    ("vae", {}, False, 0, "posterior"),
    ("avb", {"discriminator_hidden_dims": [8]}, False, 0, "posterior"),
])
def test_ais_entry_is_the_library_ais_and_bdmc_with_the_stated_settings(digits, name, config, labelled, components,
                                                                         start):
    torch.manual_seed(0)
    model = build_model(name, hidden_dims=[8], latent_dim=2, **config).eval()
    binary, labels = digits
    torch.manual_seed(1)  # AVB's moment-matched q(z|x) comes from draws of the global generator
    value, estimator, details, nll = evaluation.ais_entry(model, binary, labels, ais_settings(start=start))

    y = labels[:6] if labelled else None
    torch.manual_seed(1)
    expected = ais_log_likelihood(model, binary[:6], y, generator=torch.Generator().manual_seed(3), batch_size=4,
                                  start=start, **AIS)
    torch.testing.assert_close(nll, -expected.log_px, rtol=0, atol=0)
    assert value == float(nll.mean())
    g = torch.Generator().manual_seed(4)  # the seed + 1
    sim_labels = torch.arange(11) % components if components else None  # 0..9, 0: every label / component
    codes, images = simulate(model, 11, sim_labels, g)
    sandwich = bdmc(model, codes, images, sim_labels, generator=g, batch_size=4, start=start, **AIS)
    assert details == {
        "num_images": 6, "std_error": round(float(nll.std() / math.sqrt(6)), 4), "units": "nats", **AIS,
        "start": start,
        "pilot_chains": expected.settings["pilot_chains"], "acceptance": round(float(expected.acceptance.mean()), 3),
        "stratified_components": model.prior_components, "bdmc_gap": round(sandwich.gap, 4), "bdmc_digits": 11,
        "bdmc_lower": round(float(sandwich.lower.mean()), 4), "bdmc_upper": round(float(sandwich.upper.mean()), 4)}
    what = "-log p(x|y)" if labelled else "-log p(x)"
    assert estimator.startswith(f"{what} in nats by annealed importance sampling")
    assert "4 steps (linear schedule), 2 chains per digit, 2 leapfrog steps" in estimator
    assert "on 11 simulated digits" in estimator
    origin = (f"from the model's prior ({config.get('prior', 'gaussian')})" if start == "prior"
              else "from the encoder's moment-matched Gaussian q(z|x)")
    assert f"by annealed importance sampling (Neal 2001; Wu et al. 2017) {origin} with HMC transitions" in estimator
    if model.prior_components:
        assert estimator.endswith("on 11 simulated digits; stratified over the prior's 10 components (BDMC on log p(x|c))")
    else:
        assert estimator.endswith("on 11 simulated digits")


def test_ais_entry_scores_every_digit_without_a_limit_and_at_most_all_with_one(digits):
    torch.manual_seed(0)
    model = build_model("vae", hidden_dims=[8], latent_dim=2).eval()
    binary, labels = digits
    assert evaluation.ais_entry(model, binary, labels, ais_settings(limit=None))[2]["num_images"] == 10
    assert evaluation.ais_entry(model, binary, labels, ais_settings(limit=50))[2]["num_images"] == 10


def record(name: str, value: float = 1.0) -> EvalResult:
    return EvalResult(name, "nll", value, "mnist", "test", "estimator", {}, "cmd")


def test_ais_only_results_replace_their_namesakes_and_a_stale_is_nll_is_dropped(tmp_path):
    from vae_models.export import write_eval_results

    old = [record("IS-NLL (k=5000)", 90.0), record("AIS-NLL", 99.0), record("Prior MMD", 0.1)]
    new = [record("AIS-NLL", 88.0)]
    for name, kept in (("vae", ["IS-NLL (k=5000)", "Prior MMD", "AIS-NLL"]), ("avb", ["Prior MMD", "AIS-NLL"])):
        folder = tmp_path / name
        folder.mkdir()
        write_eval_results(folder, old, "ais.json")  # --output ais.json: the file merged with is that one
        write_eval_results(folder, [record("Other")], "eval_results.json")
        spec = build_model(name, hidden_dims=[8], latent_dim=2).spec
        merge_eval_results(folder, new, "ais.json", stale=evaluation.stale_for(spec))
        merged = read_eval_results(folder, "ais.json")
        assert [r.name for r in merged] == kept and merged[-1].value == 88.0
        assert [r.name for r in read_eval_results(folder)] == ["Other"]  # the other file is untouched
    merge_eval_results(tmp_path / "none", new, stale=evaluation.stale_for(spec))
    assert read_eval_results(tmp_path / "none") == new  # nothing to merge with: the file holds the new records


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    build_model("vae", hidden_dims=[8], latent_dim=2).save_pretrained(root / "vae")
    build_model("ae", hidden_dims=[8], latent_dim=2).save_pretrained(root / "ae")
    return root


def test_main_writes_each_models_results_under_the_output_name_and_prints_them_all(two_models, capsys):
    argv = [str(two_models / "vae"), str(two_models / "ae"), "--data-dir", str(MNIST_DIR), "--limit", "10",
            "--num-samples", "2", "--output", "quick.json", "--classifier", str(two_models / "no_classifier")]
    assert evaluation.main(argv) == 0
    out, err = capsys.readouterr()
    assert not (two_models / "vae" / "eval_results.json").exists()
    vae = read_eval_results(two_models / "vae", "quick.json")
    ae = read_eval_results(two_models / "ae", "quick.json")
    assert vae and all(r.command == "python -m train.evaluate " + " ".join(argv) for r in vae + ae)
    rows = [("model", "type", "metric", "value")] + [(n, n, r.name, str(r.value)) for n, rs in (("vae", vae), ("ae", ae))
                                                     for r in rs]
    lines = out.splitlines()
    assert len(lines) == len(rows)  # a header, then one line per record of every model
    header = lines[0]
    for line, (model, kind, metric, value) in zip(lines[1:], rows[1:]):  # each field in its header's column
        assert line.startswith(model + " ") and line.rstrip().endswith(value)
        assert line[header.index("type"):].startswith(kind + " ")
        assert line[header.index("metric"):].startswith(metric + " ")
        assert line[header.index("value"):].rstrip() == value
    assert f"wrote {two_models / 'vae' / 'quick.json'} ({len(vae)} results)" in err
    assert f"wrote {two_models / 'ae' / 'quick.json'} ({len(ae)} results)" in err
    assert (f"warning: no classifier at {two_models / 'no_classifier'}: skipping the classifier-feature FD and "
            "conditional accuracy (train one with `python -m train --model classifier ...` or pass --classifier)") in err
    assert "was trained on" not in err  # no classifier: no dataset mismatch to warn about


def test_main_reads_the_test_set_from_the_chosen_source(two_models, monkeypatch):
    calls, test_set = [], evaluation.test_set
    monkeypatch.setattr(evaluation, "test_set", lambda *a: calls.append(a) or test_set(*a[:4]))
    argv = [str(two_models / "vae"), "--data-dir", str(MNIST_DIR), "--limit", "10", "--num-samples", "2",
            "--output", "source.json", "--classifier", str(two_models / "no_classifier"), "--data-source", "hub"]
    assert evaluation.main(argv) == 0
    assert calls == [(str(MNIST_DIR), 10, 0, "mnist", "hub")]


def test_main_records_the_command_line_it_was_started_with(two_models, monkeypatch):
    argv = [str(two_models / "vae"), "--data-dir", str(MNIST_DIR), "--limit", "10", "--num-samples", "2",
            "--output", "cli.json", "--classifier", str(two_models / "no_classifier")]
    monkeypatch.setattr("sys.argv", ["train/evaluate.py", *argv])
    assert evaluation.main() == 0
    records = read_eval_results(two_models / "vae", "cli.json")
    assert records and {r.command for r in records} == {"python -m train.evaluate " + " ".join(argv)}


def test_main_reports_an_unusable_checkpoint_as_one_error_line(tmp_path, capsys):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    assert evaluation.main([str(tmp_path / "broken"), "--data-dir", str(MNIST_DIR)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_command_line_defaults_are_the_documented_protocol():
    args = evaluation.parse_args(["model"])
    assert (args.data_source, args.classifier, args.output, args.metrics, args.merge) == (
        "idx", "pretrained/classifier", "eval_results.json", None, False)
    s = args.settings
    assert (s.seed, s.num_samples, s.cll_samples, s.ais_steps, s.ais_chains, s.ais_leapfrog, s.ais_schedule,
            s.ais_start) == (0, 5000, 100, 300, 4, 3, "sigmoid", "prior")
    assert evaluation.parse_args(["model", "--data-source", "hub"]).data_source == "hub"
    with pytest.raises(SystemExit):
        evaluation.parse_args(["model", "--data-source", "parquet"])


# ------------------------------------------------------------------------------------------- evaluate's records


def evaluate(name: str, classifier=None, **config):
    torch.manual_seed(0)
    model = build_model(name, hidden_dims=[8], latent_dim=2, **config).eval()
    settings = EvalSettings(num_samples=2, cll_samples=3, seed=5)
    data = evaluation.test_set(str(MNIST_DIR), 20, 5)
    records = evaluation.evaluate(model, None, data, settings=settings, classifier=classifier, command="cmd")
    return model, data, {r.name: r for r in records}


@pytest.mark.parametrize("name,estimator", [("socvae", "importance sampled, 3 samples"), ("quadrant_nn", "exact")])
def test_cll_records_are_the_library_quadrant_nll_for_1_2_and_3_given_quadrants(name, estimator):
    from vae_models.metrics import conditional_nll_quadrants

    model, (_, binary, _), records = evaluate(name)
    for given, title in ((1, "CLL (1 quadrant given)"), (2, "CLL (2 quadrants given)"),
                         (3, "CLL (3 quadrants given)")):
        nll = conditional_nll_quadrants(model, binary, given, num_samples=3, generator=torch.Generator().manual_seed(5))
        r = records[title]
        assert (r.type, r.value) == ("cll", round(float(nll.mean()), 4))
        assert r.details == {"num_images": 20, "std_error": round(float(nll.std() / math.sqrt(20)), 4),
                             "units": "nats"}
        assert r.estimator.endswith(f"(Sohn et al. 2015, Table 1), {estimator}; test set binarised once (seed 5)")


def test_conditional_accuracy_record_is_the_library_value_on_a_tenth_of_the_digits_per_label():
    from vae_models.metrics import conditional_accuracy

    torch.manual_seed(1)
    classifier = build_model("classifier", hidden_dims=[4], latent_dim=8).eval()
    model, _, records = evaluate("cvae", classifier)
    expected = conditional_accuracy(classifier, model, 2, torch.Generator().manual_seed(5))  # 20 digits: 2 per label
    r = records["Conditional accuracy"]
    assert (r.type, r.value, r.details) == ("accuracy", round(float(expected), 4), {"num_images": 20, "num_samples": 20})
    assert r.estimator == "share of 2 samples per digit d that the classifier labels d"


def test_denoising_records_score_the_reconstruction_and_the_corrupted_input_against_the_clean_digits():
    from vae_models.corruption import corrupt
    from vae_models.metrics import psnr, ssim

    model, (grey, _, _), records = evaluate("dvae")
    for kind, level in evaluation.CORRUPTIONS:
        noisy = corrupt(grey, kind, level, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            clean = model.reconstruct(noisy)
        p, s = records[f"Denoising PSNR ({kind} {level})"], records[f"Denoising SSIM ({kind} {level})"]
        assert (p.type, p.value) == ("psnr", round(float(psnr(clean, grey)), 4))
        assert p.details == {"num_images": 20, "input_psnr": round(float(psnr(noisy, grey)), 4), "corruption": kind,
                             "level": level, "units": "dB"}
        assert (s.type, s.value) == ("ssim", round(float(ssim(clean, grey)), 4))
        assert p.estimator == "PSNR in dB of the reconstruction of the corrupted grey-level test digits against the clean ones"
        assert s.estimator == "SSIM of the reconstruction of the corrupted grey-level test digits against the clean ones"
        assert s.details == {"num_images": 20, "input_ssim": round(float(ssim(noisy, grey)), 4), "corruption": kind,
                             "level": level}


def test_the_ais_record_of_a_label_conditional_model_is_scored_given_the_labels(digits):
    torch.manual_seed(0)
    model = build_model("cvae", hidden_dims=[8], latent_dim=2).eval()
    assert model.spec.needs_ais
    settings = ais_settings()
    data = evaluation.test_set(str(MNIST_DIR), 10, 0)
    records = {r.name: r for r in evaluation.evaluate(model, WITH_AIS, data, settings=settings, command="cmd")}
    value, _, details, _ = evaluation.ais_entry(model, data[1], data[2], settings)  # -log p(x|y) of the true labels
    assert records["AIS-NLL"].value == round(value, 4) and records["AIS-NLL"].details == details


def test_likelihood_and_sample_quality_records_say_what_they_measure():
    torch.manual_seed(1)
    classifier = build_model("classifier", hidden_dims=[4], latent_dim=8).eval()
    _, _, records = evaluate("cvae", classifier)
    assert records["IS-NLL (k=2)"].estimator.startswith("-log p(x|y) in nats, importance-weighted bound")
    assert records["Classifier-feature FD"].estimator.startswith(
        "Fréchet distance between Gaussians fitted to the classifier's penultimate features of 20 prior samples")
    assert records["Classifier-feature FD"].details == {"num_images": 20, "num_samples": 20}
    _, _, records = evaluate("dvae")
    assert records["Denoising SSIM (block 0.5)"].estimator.startswith("SSIM of the reconstruction of the corrupted")


def test_prior_mmd_record_is_the_seeded_library_value():
    from vae_models.metrics import prior_mmd

    model, (_, binary, _), records = evaluate("aae")
    expected = prior_mmd(model, binary, None, 20, torch.Generator().manual_seed(5))
    assert (records["Prior MMD"].type, records["Prior MMD"].value) == ("mmd", round(float(expected), 4))
    assert records["Prior MMD"].details == {"num_images": 20, "num_samples": 20}


def test_a_classifier_is_scored_by_its_test_accuracy():
    torch.manual_seed(1)
    classifier = build_model("classifier", hidden_dims=[4], latent_dim=8).eval()
    grey, binary, labels = data = evaluation.test_set(str(MNIST_DIR), 20, 0)
    (record,) = evaluation.evaluate(classifier, None, data, command="cmd")
    expected = (classifier.predict(grey) == labels).float().mean()
    assert (record.name, record.type, record.value) == ("Test accuracy", "accuracy", round(float(expected), 4))
    assert record.estimator == "top-1 accuracy on the grey-level test digits"


def test_command_line_choices_switches_and_bounds(tmp_path, capsys):
    parse = evaluation.parse_args
    assert parse(["m", "--data-source", "idx"]).data_source == "idx"
    assert parse(["m", "--ais-schedule", "linear"]).ais_schedule == "linear"
    assert parse(["m", "--num-samples", "1", "--cll-samples", "1", "--limit", "10"]).settings.num_samples == 1
    for bad, message in ((["m", "--ais-schedule", "cosine"], "invalid choice"),
                         (["m", "--ais-start", "middle"], "invalid choice"),
                         (["m", "--metrics", "fid"], "invalid choice"),
                         (["m", "--num-samples", "0"], "--num-samples must be >= 1"),
                         (["m", "--cll-samples", "0", "--ais-limit", "0"], "--cll-samples, --ais-limit must be >= 1"),
                         (["m", "--exact-spacing", "0"], "--exact-spacing must be > 0"),
                         (["m", "--limit", "9"], "--limit must be >= 10"),
                         ([], "give checkpoint folders or --all DIR"),
                         (["--all", str(tmp_path / "missing")], f"--all: {tmp_path / 'missing'} is not a folder")):
        with pytest.raises(SystemExit):
            parse(bad)
        assert message in capsys.readouterr().err


def test_all_adds_every_model_folder_inside_sorted_after_the_named_ones(tmp_path):
    for name in ("b_model", "a_model"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    (tmp_path / "notes").mkdir()  # no config.json: not a model
    args = evaluation.parse_args(["first", "--all", str(tmp_path)])
    assert args.checkpoints == ["first", str(tmp_path / "a_model"), str(tmp_path / "b_model")]


def test_a_grey_level_model_is_scored_on_the_grey_digits_and_every_record_names_its_source():
    """A continuous-Bernoulli VAE models grey levels: its bound is computed on the grey test digits, not the
    binarised ones, and says so; every record carries the dataset (MNIST unless told), the split and the command."""
    from vae_models.metrics import importance_sampled_nll

    torch.manual_seed(0)
    model = build_model("vae", hidden_dims=[8], latent_dim=2, likelihood="continuous_bernoulli").eval()
    grey, _, _ = data = evaluation.test_set(str(MNIST_DIR), 20, 5)
    records = evaluation.evaluate(model, None, data, settings=EvalSettings(num_samples=2, seed=5),
                                  command="python -m train.evaluate m")
    torch.manual_seed(5)  # evaluate seeds torch's generator with the seed: the same importance samples
    expected = importance_sampled_nll(model, grey, None, num_samples=2)
    (nll,) = [r for r in records if r.name == "IS-NLL (k=2)"]
    assert nll.value == round(float(expected.mean()), 4)
    assert nll.details == {"num_images": 20, "std_error": round(float(expected.std() / math.sqrt(20)), 4),
                           "units": "nats"}
    assert nll.estimator.startswith("-log p(x) in nats") and nll.estimator.endswith("; grey-level test set")
    assert {(r.dataset, r.split, r.command) for r in records} == {("mnist", "test", "python -m train.evaluate m")}


def test_conditional_accuracy_draws_one_sample_per_label_from_the_smallest_test_set():
    from vae_models.metrics import conditional_accuracy

    torch.manual_seed(1)
    classifier = build_model("classifier", hidden_dims=[4], latent_dim=8).eval()
    model = build_model("cvae", hidden_dims=[8], latent_dim=2).eval()
    records = {r.name: r for r in evaluation.evaluate(model, None, evaluation.test_set(str(MNIST_DIR), 10, 5),
                                                      settings=EvalSettings(num_samples=2, seed=5),
                                                      classifier=classifier, command="cmd")}
    expected = conditional_accuracy(classifier, model, 1, torch.Generator().manual_seed(5))
    r = records["Conditional accuracy"]
    assert (r.value, r.details) == (round(float(expected), 4), {"num_images": 10, "num_samples": 10})


def test_avbs_gap_record_is_its_objectives_seeded_elbo_minus_the_ais_log_likelihood():
    """AVB's learned KL checked against AIS: per digit, the training objective's ELBO estimate (seeded once, in
    batches of 100 digits) plus the AIS -log p(x); here 150 digits, so two batches."""
    torch.manual_seed(0)
    model = build_model("avb", hidden_dims=[8], latent_dim=2, discriminator_hidden_dims=[8]).eval()
    settings = ais_settings(limit=150, seed=3)
    data = evaluation.test_set(str(MNIST_DIR), 150, 3)
    records = {r.name: r for r in evaluation.evaluate(model, WITH_AIS, data, settings=settings, command="cmd")}
    _, _, _, nll = evaluation.ais_entry(model, data[1], data[2], settings)
    torch.manual_seed(3)
    with torch.no_grad():
        objective = torch.cat([model.objective_elbo(data[1][:100]), model.objective_elbo(data[1][100:])])
    gap = objective + nll
    r = records["Objective ELBO minus AIS log-likelihood"]
    assert (r.type, r.value, r.dataset, r.split, r.command) == ("elbo_gap", round(float(gap.mean()), 4), "mnist",
                                                                "test", "cmd")
    assert r.details == {"num_images": 150, "std_error": round(float(gap.std() / math.sqrt(150)), 4),
                         "units": "nats", "objective_elbo": round(float(objective.mean()), 4)}
    assert r.estimator.startswith("mean over test digits of the training objective's own ELBO estimate (-(reconstruction"
                                  " + T's KL estimate), 8 noise draws) minus the AIS estimate of log p(x); > 0 means T "
                                  "underestimates the KL")
    assert r.estimator.endswith("; test set binarised once (seed 3)")
    assert (records["AIS-NLL"].dataset, records["AIS-NLL"].split, records["AIS-NLL"].command) == ("mnist", "test", "cmd")


def test_a_2d_models_ais_error_is_its_ais_nll_minus_the_quadrature_on_the_same_digits():
    """AIS on the first 7 of 12 digits; the quadrature on exactly those 7, on Exact-NLL's grid, is what AIS is
    measured against (per digit, then the mean and its standard error)."""
    from vae_models.quadrature import latent_grid, quadrature_log_likelihood

    torch.manual_seed(0)
    model = build_model("vae", hidden_dims=[8], latent_dim=2).eval()
    settings = dataclasses.replace(ais_settings(limit=7, seed=3), exact_spacing=0.1)
    data = evaluation.test_set(str(MNIST_DIR), 12, 3)
    records = {r.name: r for r in evaluation.evaluate(model, ["ais"], data, settings=settings, command="cmd")}
    _, _, details, nll = evaluation.ais_entry(model, data[1], data[2], settings)
    exact = -quadrature_log_likelihood(model, data[1][:7], grid=latent_grid(model, spacing=0.1)).log_px
    error = nll - exact
    r = records["AIS-NLL minus Exact-NLL"]
    assert (r.type, r.value) == ("nll_difference", round(float(error.mean()), 4))
    assert r.details == {"num_images": 7, "std_error": round(float(error.std() / math.sqrt(7)), 4), "units": "nats",
                         "exact_nll": round(float(exact.mean()), 4), "bdmc_gap": details["bdmc_gap"],
                         "within_bdmc_gap": abs(float(error.mean())) <= details["bdmc_gap"]}
    higher = build_model("vae", hidden_dims=[8], latent_dim=3).eval()  # no quadrature beyond 2-D
    assert "AIS-NLL minus Exact-NLL" not in {r.name for r in evaluation.evaluate(higher, ["ais"], data,
                                                                                 settings=settings, command="c")}


def test_conditional_samples_are_drawn_from_a_generator_seeded_with_the_seed(monkeypatch):
    """The conditional accuracy repeats run to run: its samples come from torch.Generator().manual_seed(--seed)."""
    real, states = evaluation.conditional_accuracy, []

    def recording(classifier, model, per_digit, generator):
        states.append(generator.get_state().clone())
        return real(classifier, model, per_digit, generator)

    monkeypatch.setattr(evaluation, "conditional_accuracy", recording)
    torch.manual_seed(1)
    evaluate("cvae", build_model("classifier", hidden_dims=[4], latent_dim=8).eval())
    assert len(states) == 1 and torch.equal(states[0], torch.Generator().manual_seed(5).get_state())


def test_the_test_set_is_the_test_split_in_grey_levels_from_the_chosen_source(monkeypatch):
    from vae_models.data import load_mnist

    grey, _, labels = evaluation.test_set(str(MNIST_DIR), 30, 0)
    images, expected_labels = load_mnist("test", data_dir=str(MNIST_DIR))
    torch.testing.assert_close(grey, images[:30].float().unsqueeze(1) / 255, rtol=0, atol=0)
    assert torch.equal(labels, expected_labels[:30]) and grey.max() == 1.0
    calls = []  # --data-source reaches the loader (its Hub path is tests/test_data_hub.py's)
    monkeypatch.setattr(evaluation, "load_mnist", lambda *a, **k: calls.append((a, k)) or (images, expected_labels))
    evaluation.test_set("somewhere", 30, 0, "fashion_mnist", source="hub")
    assert calls == [(("test",), {"data_dir": "somewhere", "dataset": "fashion_mnist", "source": "hub"})]


def test_the_exact_record_is_the_library_quadrature_on_the_stated_grid_for_2d_models_with_the_ais_interface():
    from vae_models.quadrature import latent_grid, quadrature_log_likelihood

    torch.manual_seed(0)
    settings = EvalSettings(exact_spacing=0.1, seed=5)
    data = evaluation.test_set(str(MNIST_DIR), 10, 5)
    for name, labelled in (("vae", False), ("cvae", True)):
        model = build_model(name, hidden_dims=[8], latent_dim=2).eval()
        (record,) = evaluation.evaluate(model, ["exact"], data, settings=settings, command="cmd")
        expected = quadrature_log_likelihood(model, data[1], data[2] if labelled else None,
                                             latent_grid(model, spacing=0.1))
        nll = -expected.log_px
        assert (record.name, record.type, record.value) == ("Exact-NLL", "nll", round(float(nll.mean()), 4))
        assert record.details == {
            "num_images": 10, "std_error": round(float(nll.std() / math.sqrt(10)), 4), "units": "nats",
            "spacing": 0.1, "support_nats": 32.0, "grid_cells": len(expected.grid.index), "extent": 8.0,
            "spacing_change_of_mean": round(expected.mean_spacing_change, 5),
            "spacing_change_per_digit_mean": round(float(expected.spacing_change.mean()), 5),
            "spacing_change_per_digit_max": round(float(expected.spacing_change.max()), 4),
            "support_change_per_digit_max": float(f"{float(expected.support_change.max()):.2g}")}
        what = "-log p(x|y)" if labelled else "-log p(x)"
        assert record.estimator.startswith(f"{what} in nats by quadrature: the midpoint rule on "
                                           f"{len(expected.grid.index)} cells of side 0.1")
        assert record.estimator.endswith("; test set binarised once (seed 5)")
    for name, config in (("vae", {"latent_dim": 3}), ("ae", {"latent_dim": 2})):  # no 2-D code / no prior
        assert evaluation.evaluate(build_model(name, hidden_dims=[8], **config), ["exact"], data, settings=settings,
                                   command="cmd") == []


# ------------------------------------------------------------------------------------- the Python call and the table


def test_evaluate_on_an_export_path_gives_the_exact_nll_of_the_library_quadrature_on_the_same_digits():
    """From Python, no argparse: the bundled 2-D VAE by its folder, its first 20 test digits binarised with seed 0."""
    from vae_models.quadrature import latent_grid, quadrature_log_likelihood

    path = str(ROOT / "pretrained/vae-2d")
    (record,) = evaluation.evaluate(path, metrics=["exact"], settings=EvalSettings(exact_spacing=0.1), limit=20,
                                    data_dir=str(MNIST_DIR))
    model = load_model(path)
    _, binary, _ = evaluation.test_set(str(MNIST_DIR), 20, 0)
    expected = -quadrature_log_likelihood(model, binary, grid=latent_grid(model, spacing=0.1)).log_px
    assert (record.name, record.value, record.dataset) == ("Exact-NLL", round(float(expected.mean()), 4), "mnist")
    assert record.command == (f"python -m train.evaluate {path} --metrics exact --exact-spacing 0.1 --data-dir "
                              f"{MNIST_DIR} --limit 20")


def test_an_unknown_metric_name_is_an_error_that_names_the_known_ones():
    model = build_model("vae", hidden_dims=[8], latent_dim=2)
    with pytest.raises(EvalError, match=r"unknown metrics \['fid'\]; known: \['ais', 'exact', 'elbo', 'active_units', "
                                        r"'conditional_accuracy', 'is_nll', 'cll', 'denoising', 'classifier_fd', "
                                        r"'prior_mmd', 'accuracy', 'clustering', 'semi_supervised'\]"):
        evaluation.evaluate(model, ["prior_mmd", "fid"], evaluation.test_set(str(MNIST_DIR), 10, 0))


def test_a_named_metric_the_model_does_not_support_is_skipped():
    """A 3-D code has no quadrature: asked for it and the prior MMD, a VAE gets the MMD alone."""
    torch.manual_seed(0)
    model = build_model("vae", hidden_dims=[8], latent_dim=3).eval()
    records = evaluation.evaluate(model, ["exact", "prior_mmd"], evaluation.test_set(str(MNIST_DIR), 10, 0))
    assert [r.name for r in records] == ["Prior MMD"]


def test_the_defaults_are_the_metrics_that_run_unless_opted_out_and_ais_and_exact_are_opt_in():
    assert evaluation.DEFAULT_METRICS == ["conditional_accuracy", "is_nll", "cll", "denoising", "classifier_fd",
                                          "prior_mmd", "accuracy", "clustering", "semi_supervised"]
    parse = evaluation.parse_args
    assert parse(["m", "--ais"]).metrics == evaluation.DEFAULT_METRICS + ["ais"]
    assert parse(["m", "--exact"]).metrics == evaluation.DEFAULT_METRICS + ["exact"]
    assert (parse(["m", "--ais-only"]).metrics, parse(["m", "--ais-only"]).merge) == (
        ["ais", "conditional_accuracy"], True)
    assert parse(["m", "--exact-only", "--metrics", "prior_mmd"]).metrics == ["prior_mmd", "exact"]


@pytest.fixture()
def tiny_export(tmp_path):
    torch.manual_seed(0)
    build_model("vae", hidden_dims=[8], latent_dim=2).save_pretrained(tmp_path / "vae")
    return tmp_path / "vae"


def test_the_command_line_and_the_python_call_give_identical_records(tiny_export):
    records = evaluation.evaluate(str(tiny_export), ["exact", "is_nll"], limit=10, data_dir=str(MNIST_DIR),
                                  settings=EvalSettings(num_samples=3, exact_spacing=0.1))
    argv = shlex.split(records[0].command)[3:]  # the command the records name, minus "python -m train.evaluate"
    assert evaluation.main(argv) == 0
    assert read_eval_results(tiny_export) == records and [r.name for r in records] == ["Exact-NLL", "IS-NLL (k=3)"]


def test_metrics_option_merges_into_the_existing_file_replacing_only_the_records_of_the_same_name(tiny_export):
    from vae_models.export import write_eval_results

    write_eval_results(tiny_export, [record("Prior MMD", 9.0), record("Exact-NLL", 1.0), record("Other", 2.0)])
    argv = [str(tiny_export), "--metrics", "exact", "--exact-spacing", "0.1", "--limit", "10", "--data-dir",
            str(MNIST_DIR), "--classifier", str(tiny_export / "none")]
    assert evaluation.main(argv) == 0
    (fresh,) = evaluation.evaluate(str(tiny_export), ["exact"], settings=EvalSettings(exact_spacing=0.1), limit=10,
                                   data_dir=str(MNIST_DIR), command="python -m train.evaluate " + shlex.join(argv))
    assert read_eval_results(tiny_export) == [record("Prior MMD", 9.0), record("Other", 2.0), fresh]


def test_ais_from_the_posterior_is_recorded_in_the_ais_records_details_and_estimator():
    torch.manual_seed(0)
    model = build_model("vae", hidden_dims=[8], latent_dim=2).eval()
    data = evaluation.test_set(str(MNIST_DIR), 10, 3)
    record, _ = evaluation.evaluate(model, ["ais"], data, settings=ais_settings(start="posterior"))  # and its error
    assert record.details["start"] == "posterior"
    assert "by annealed importance sampling (Neal 2001; Wu et al. 2017) from the encoder's moment-matched Gaussian " \
           "q(z|x) with HMC transitions" in record.estimator


def test_ais_from_the_posterior_is_refused_with_one_clear_error_for_a_model_without_a_gaussian_proposal(
        tmp_path, capsys):
    """The AAE's encoder is deterministic: it has no q(z|x) to start from. Python gets an EvalError, the command
    line one error line and exit status 2, before anything is computed or written."""
    torch.manual_seed(0)
    model = build_model("aae", hidden_dims=[8], latent_dim=2)
    message = ("AIS from the posterior (ais_start='posterior', --ais-start posterior) needs a model with a Gaussian "
               "proposal q(z|x) (posterior_gaussian: the VAEs, AVB); a 'aae' model has none: start from the prior")
    with pytest.raises(EvalError) as exc:
        evaluation.evaluate(model, ["ais"], evaluation.test_set(str(MNIST_DIR), 10, 0),
                            settings=EvalSettings(ais_start="posterior"))
    assert str(exc.value) == message
    model.save_pretrained(tmp_path / "aae")
    assert evaluation.main([str(tmp_path / "aae"), "--ais-only", "--ais-start", "posterior", "--data-dir",
                            str(MNIST_DIR)]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "aae" / "eval_results.json").exists()


def test_the_settings_dataclass_is_the_command_lines_one_source_of_defaults_and_help():
    from train.options import field_help

    assert evaluation.parse_args(["m"]).settings == EvalSettings()
    assert evaluation.parse_args(["m", "--ais-steps", "7", "--exact-spacing", "0.5"]).settings == EvalSettings(
        ais_steps=7, exact_spacing=0.5)
    helps = field_help(EvalSettings)
    assert set(helps) == set(EvalSettings.__dataclass_fields__)  # every field has its help
    assert helps["ais_start"] == ("AIS: chains start from the model's prior p(z), or from the encoder's "
                                  "moment-matched Gaussian q(z|x) (models with a Gaussian proposal)")


def test_the_negative_elbo_record_is_the_librarys_dataset_elbo_on_the_scored_digits():
    from vae_models.posterior import dataset_elbo

    torch.manual_seed(0)
    model = build_model("vae", hidden_dims=[8], latent_dim=2).eval()
    data = evaluation.test_set(str(MNIST_DIR), 20, 3)
    (record,) = evaluation.evaluate(model, ["elbo"], data, settings=evaluation.EvalSettings(seed=3))
    expected = dataset_elbo(model, data[1], seed=3)
    assert (record.name, record.type, record.value) == ("Negative ELBO", "elbo", round(-expected.mean, 4))
    assert record.details["monte_carlo_error"] == round(expected.error, 4)
    assert evaluation.evaluate(build_model("cvae", hidden_dims=[8], latent_dim=2), ["elbo"], data) == []  # p(x|y)
