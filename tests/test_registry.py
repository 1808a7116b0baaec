"""A model is one declaration and a checkpoint one recipe: a toy model defined and registered here, in the test
module, with its checkpoints declared as catalogue entries, is trained by `python -m train`, evaluated, carded,
reported and offered by the app without any edit to train/ or demo/. Also: what the registry refuses, and the export
records (vae_models/export.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import vae_models
from vae_models import ConfigError, LossOutput, ModelSpec, Paper, VAEFamilyModel, add_checkpoint, register_model
from vae_models.blocks import Decoder, Encoder, PixelLikelihoodConfig
from vae_models.export import (SCHEMA_VERSION, EvalResult, ExportError, TrainingRecord, read_eval_results,
                               read_training_record, training_dataset, write_eval_results, write_training_record)
from vae_models.vae import GaussianEncoderMixin
from tests.paths import MNIST_DIR

REPO = Path(__file__).resolve().parents[1]
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV = {"HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False", "TQDM_DISABLE": "1",
       "OMP_NUM_THREADS": "1"}


@dataclass
class ToyConfig(PixelLikelihoodConfig):  # the shared pixel likelihood, which the trainer's binarisation follows
    model_type: str = "toy"


class Toy(GaussianEncoderMixin, VAEFamilyModel):
    """The smallest honest VAE: Gaussian q(z|x), Bernoulli p(x|z), loss = -ELBO (Kingma & Welling 2013, eq. 10)."""

    config_class = ToyConfig
    spec = ModelSpec(
        name="toy",
        description="a toy VAE that exists only in the test suite",
        paper=Paper("A Toy for Registries", "Tester & Tester", 2026, arxiv="2611.00001"),
        likelihood="bound",
        prior_matched=True,
    )

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        self.encoder = Encoder(config, 2 * config.latent_dim)
        self.decoder = Decoder(config, config.latent_dim)

    def loss(self, batch) -> LossOutput:
        reconstruction, kl = (t.mean() for t in self.elbo_terms(batch[0], batch[0], None))
        return LossOutput(reconstruction + kl, {"reconstruction": reconstruction, "kl": kl})


# The toys' checkpoints, declared as a recipe file in recipes/ declares a bundled one (vae_models/catalogue.py).
TOY_RECIPES = {
    "toy": {"model": "toy", "checkpoint": {"title": "Toy VAE", "anchors": {"IS-NLL": "42 (the toy paper)"}},
            "model_config": {"hidden_dims": [16]}},
    "toy-2d": {"model": "toy", "checkpoint": {"title": "Toy (2-D)", "caption": "Toy: KL to N(0, I)"},
               "model_config": {"hidden_dims": [16], "latent_dim": 2}, "train": {"batch_size": 32}},
    "toycvae": {"model": "toycvae", "checkpoint": {"title": "Toy CVAE", "featured": True, "traversal": True},
                "model_config": {"hidden_dims": [16]}},
    "toydvae": {"model": "toydvae", "checkpoint": {"title": "Toy DVAE", "featured": True, "interpolation": True},
                "model_config": {"hidden_dims": [16]}},
}


def declared(*classes):
    """Register the toy model classes and add their checkpoints to the catalogue; both go again afterwards."""
    names = [cls.spec.name for cls in classes]
    recipes = [name for name, recipe in TOY_RECIPES.items() if recipe["model"] in names]
    for cls in classes:
        register_model(cls)
    for name in recipes:
        add_checkpoint(name, TOY_RECIPES[name])
    yield
    for name in recipes:
        vae_models.remove_checkpoint(name)
    for name in names:
        vae_models.unregister_model(name)


@pytest.fixture
def toy():
    yield from declared(Toy)


# Runs `python -m train`'s own entry point in a fresh interpreter that has registered the toy model first, as a
# user's package would by importing its model module.
TRAIN_TOY = """
import sys
from vae_models import register_model
from tests.test_registry import Toy
from train.__main__ import main
register_model(Toy)
sys.exit(main(sys.argv[1:]))
"""


def test_a_registered_toy_model_is_trained_evaluated_carded_reported_and_offered(toy, tmp_path, capsys):
    from demo import build_app, live, priors, sampling
    from train.card import write_card
    from train.evaluate import main as evaluate_main
    from train.report import main as report_main

    from demo.tiny_weights import make_tiny_weights

    # Only the AE (a sampler beside the toy) and the classifier (the evaluation's judge); the toy's own come next.
    weights = make_tiny_weights(tmp_path / "weights", skip=tuple(set(vae_models.checkpoints()) - {"ae", "classifier"}))
    export = weights / "toy"
    proc = subprocess.run(
        [sys.executable, "-c", TRAIN_TOY, "--model", "toy", "--set", "hidden_dims=[16]", "--set", "latent_dim=2",
         "--batch-size", "32", "--max-steps", "3", "--checkpoint-every", "0", "--data-dir", str(MNIST_DIR),
         "--output-dir", str(tmp_path / "run"), "--save-pretrained", str(export)],
        cwd=REPO, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = read_training_record(export)
    assert record.args["model"] == "toy" and record.steps == 3 and record.binarize == "dynamic"
    assert isinstance(vae_models.load_model(str(export)), Toy)

    argv = [str(export), "--data-dir", str(MNIST_DIR), "--limit", "20", "--num-samples", "4",
            "--classifier", str(weights / "classifier")]
    assert evaluate_main(argv) == 0
    results = read_eval_results(export)
    # likelihood "bound" -> IS-NLL; generative -> classifier FD; prior_matched -> prior MMD; not denoising: no PSNR
    assert {r.type for r in results} == {"nll", "classifier_fd", "mmd"}

    card = write_card(export, repo_id="me/mnist-toy").read_text()
    assert "a toy VAE that exists only in the test suite" in card and "arXiv:2611.00001" in card
    assert "model-index" in card and "IS-NLL (k=4)" in card and record.command in card

    capsys.readouterr()
    assert report_main([str(weights)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert next(r for r in rows if r.startswith("| `toy` | IS-NLL (k=4) |")).endswith("| 42 (the toy paper) |")

    (weights / "toy-2d").symlink_to(export, target_is_directory=True)
    app = build_app(weights_dir=weights, hub=False)
    dropdowns = {b.label: [value for _, value in b.choices] for b in app.blocks.values()
                 if type(b).__name__ == "Dropdown"}
    assert "toy" in dropdowns["Model"] and "toy-2d" in dropdowns["2-D model"]
    assert "every-toy" in {getattr(b, "elem_id", None) for b in app.blocks.values()}  # "Explore a digit" shows it
    assert sampling.sample_grid(app.store, "toy", 4, 1.0, 0).size[0] > 0
    assert sampling.manifold(app.store, "toy-2d", 3).size[0] > 0
    assert "| Toy: KL to N(0, I) | " in priors.metrics_table(app.store)

    # Given a folder of recipes (the toy's 2-D checkpoint alone), the live-training tab offers and trains what it
    # declares, from that recipe.
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "toy-2d.json").write_text(json.dumps(TOY_RECIPES["toy-2d"]))
    training = live.LiveTraining(str(MNIST_DIR), tmp_path / "live", recipes_dir=recipes)
    assert list(training.models) == ["toy-2d"] and training.models["toy-2d"].title == "Toy (2-D)"
    *_, status, zipped = list(training.train("toy-2d", 1, 0, "visitor"))[-1]
    assert status.startswith("**Done**: Toy (2-D), ") and "Test NLL" in status  # likelihood "bound": an IS-NLL
    with zipfile.ZipFile(zipped) as z:
        trained = json.loads(z.read("live-toy-2d/config.json"))
    assert trained["model_type"] == "toy" and trained["hidden_dims"] == [16]


@dataclass
class ToyCVAEConfig(vae_models.CVAEConfig):
    model_type: str = "toycvae"


class ToyCVAE(vae_models.CVAE):
    """A label-conditional toy that asks for the conditional views: the CVAE's network under another declaration."""

    config_class = ToyCVAEConfig
    spec = ModelSpec(name="toycvae", description="a toy conditional VAE", label_conditional=True, likelihood="bound")


@dataclass
class ToyDVAEConfig(vae_models.DVAEConfig):
    model_type: str = "toydvae"


class ToyDVAE(vae_models.DVAE):
    """A denoising toy compared with the toy VAE above, and one more latent space for the interpolation view."""

    config_class = ToyDVAEConfig
    spec = ModelSpec(name="toydvae", description="a toy denoising VAE", likelihood="bound", denoising=True,
                     baseline="toy")


@pytest.fixture
def view_toys():
    yield from declared(Toy, ToyCVAE, ToyDVAE)


def test_the_bundled_declarations_pick_the_models_each_view_is_built_around():
    from demo import explore, weights

    assert weights.conditional_sampler() == "cvae" and weights.label_judge() == "classifier"
    assert weights.denoising_pair() == ("dvae", "vae") and weights.completion_pair() == ("socvae", "quadrant_nn")
    assert list(weights.interpolation_checkpoints()) == ["ae", "vae"]
    assert explore.traversal_choices() == {"VAE": "vae", "CVAE (style code z; the label stays fixed)": "cvae"}
    assert weights.featured(weights.sampler_checkpoints(), "x") == "vae"
    assert weights.featured(weights.latent_2d_checkpoints(), "x") == "vae-2d"
    assert weights.featured(["ae", "avb"], "x") == "ae"  # none featured: the first declared


def test_toy_models_declaring_view_capabilities_are_offered_by_those_views(view_toys, tmp_path):
    """Declaring label_conditional / denoising with a baseline on the model, and traversal / interpolation (and
    `featured`, where a view shows one model) on its checkpoint's catalogue entry, is all it takes: the conditional,
    denoising, traversal and interpolation views use the toys, although no bundled weight of the models they replace
    is present."""
    from demo import build_app, conditional, denoising, explore, sampling
    from demo.common import example_choices

    weights = tmp_path / "weights"
    for name, fields in (("toy", {}), ("toycvae", {}), ("toydvae", {}), ("classifier", {"hidden_dims": [4]})):
        torch.manual_seed(0)
        vae_models.build_model(name, **{"hidden_dims": [16], "latent_dim": 2, **fields}).save_pretrained(weights / name)
    app = build_app(weights_dir=weights, hub=False)
    store, zero = app.store, example_choices()[0]
    blocks = list(app.blocks.values())
    labels = {b.elem_id: b.label for b in blocks if getattr(b, "elem_id", None) and hasattr(b, "label")}

    # Conditional digits: samples and "same style" come from the featured label-conditional model.
    assert labels["cvae-out"] == "Toy CVAE samples"
    assert conditional.cvae_samples(store, 3, 0, 4).size[0] > 0
    _, row, note = conditional.same_style(store, None, None, zero, conditional.AUTO)
    assert row.size[0] > 0 and "predicted by the classifier" in note  # the classifier is the declared label judge

    # Traversal: the Radio offers the toy, as a style code because it is label-conditional, and sweeps it.
    radio = next(b for b in blocks if type(b).__name__ == "Radio" and ("VAE", "vae") in b.choices)
    assert ("Toy CVAE (style code z; the label stays fixed)", "toycvae") in radio.choices
    _, grid, t_note = explore.traverse(store, None, None, zero, "toycvae", 2, 3)
    assert grid.size[0] > 0 and "Label **0** (its test-set label) is kept fixed" in t_note

    # Denoising: the featured denoiser beside the baseline it declares, titled by their checkpoints.
    assert labels["dvae-out"] == "Toy DVAE output" and "Plain Toy VAE output" in {b.label for b in blocks
                                                                                 if type(b).__name__ == "Image"}
    *_, denoised, plain, table = denoising.denoise(store, None, None, zero, "gaussian", 0.3, 0)
    assert denoised is not None and plain is not None
    assert "| Toy DVAE | " in table and "| plain Toy VAE | " in table and "unavailable" not in table

    # Interpolation: one row per checkpoint that declares it; the AE and the VAE have no weights here, the toy does.
    assert labels["interp-toydvae"] == "Toy DVAE: decoded path"
    _, ae_row, vae_row, toy_row, _, i_note = sampling.interpolate(store, None, None, zero, None, None, zero, 3)
    assert ae_row is None and vae_row is None and toy_row is not None and "'ae' is unavailable" in i_note


def test_the_app_names_no_model():
    """demo/ dispatches on declarations: no string in its code (docstrings and messages included) is a registered
    model's or checkpoint's name, so a new model needs no edit there."""
    import ast

    names = set(vae_models.MODELS) | set(vae_models.checkpoints())
    found = [(path.name, node.lineno, node.value) for path in sorted((REPO / "demo").glob("*.py"))
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Constant) and node.value in names]
    assert found == []


def test_a_view_without_a_qualifying_model_or_with_a_broken_baseline_says_so(toy):
    from demo import weights

    with pytest.raises(ConfigError, match="no registered model declares traversal=True"):
        weights.featured([], "traversal=True")
    with pytest.raises(ConfigError, match="cannot be its own baseline"):
        ModelSpec(name="x", description="d", baseline="x")
    orphan = ModelSpec(name="x", description="d", denoising=True, baseline="nothing")
    with pytest.raises(ConfigError, match="x declares baseline='nothing', which is not a registered model"):
        weights.baseline_of(orphan)
    assert weights.baseline_of(ModelSpec(name="x", description="d", baseline="toy")) == "toy"  # its default checkpoint


def test_registry_refuses_undeclared_misnamed_and_clashing_models():
    class NoSpec(Toy):
        spec = None

    with pytest.raises(TypeError, match="spec = ModelSpec"):
        register_model(NoSpec)

    class Misnamed(Toy):
        spec = ModelSpec(name="other", description="d")

    with pytest.raises(TypeError, match="differs from its config's model_type"):
        register_model(Misnamed)

    class Impostor(Toy):
        config_class = vae_models.VAEConfig
        spec = ModelSpec(name="vae", description="d")

    with pytest.raises(TypeError, match="already registered"):
        register_model(Impostor)
    assert vae_models.MODELS["vae"] is vae_models.VAE
    with pytest.raises(ConfigError, match="unknown model 'toy'"):
        vae_models.build_model("toy")  # not registered outside the fixture
    with pytest.raises(ConfigError, match="likelihood must be one of"):
        ModelSpec(name="x", description="d", likelihood="ais")


def test_every_bundled_export_is_a_catalogue_entry_of_its_model():
    catalogue = vae_models.checkpoints()
    bundled = sorted(p.name for p in (REPO / "pretrained").iterdir() if (p / "config.json").is_file())
    assert sorted(catalogue) == bundled
    for name, (checkpoint, spec) in catalogue.items():
        config = json.loads((REPO / "pretrained" / name / "config.json").read_text())
        assert config["model_type"] == spec.name, name
        # "2d" in a name: drawn in a plane (a 2-D code, or aae-2d-clusters' 2-D style beside its cluster code)
        assert checkpoint.config.pictured_in_2d == ("2d" in name) == (config["latent_dim"] == 2), name


# ------------------------------------------------------------------------------------------- export records


def test_eval_results_round_trip_with_schema_version_and_read_legacy_lists(tmp_path):
    results = [EvalResult("IS-NLL (k=5)", "nll", 90.5, "fashion_mnist", "test", "bound", {"num_images": 3}, "cmd"),
               EvalResult("Prior MMD", "mmd", 0.01)]
    write_eval_results(tmp_path, results)
    data = json.loads((tmp_path / "eval_results.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION and len(data["results"]) == 2
    assert read_eval_results(tmp_path) == results
    (tmp_path / "eval_results.json").write_text(json.dumps([r.to_dict() for r in results]))  # version 0: a list
    assert read_eval_results(tmp_path) == results
    assert read_eval_results(tmp_path / "nothing") is None


@pytest.mark.parametrize("content, needle", [
    ("not json", "cannot read"),
    ('{"schema_version": 99, "results": []}', "schema_version"),
    ('[{"name": "x", "type": "nll"}]', "missing keys ['value']"),
    ('[{"name": "x", "type": "nll", "value": "high"}]', "must be a number"),
    ('[{"name": "x", "type": "nll", "value": 1, "colour": "red"}]', "unknown keys ['colour']"),
    ('{"results": "x"}', "schema_version"),
])
def test_malformed_eval_results_are_errors_naming_the_file(tmp_path, content, needle):
    (tmp_path / "eval_results.json").write_text(content)
    with pytest.raises(ExportError, match="eval_results.json") as info:
        read_eval_results(tmp_path)
    assert needle in str(info.value)


def test_training_record_round_trip_and_dataset(tmp_path):
    assert training_dataset(tmp_path) == "mnist"  # no record: an MNIST model
    record = TrainingRecord("python -m train --model vae", {"model": "vae", "dataset": "fashion_mnist"}, steps=7)
    write_training_record(tmp_path, record)
    assert json.loads((tmp_path / "training_args.json").read_text())["schema_version"] == SCHEMA_VERSION
    assert read_training_record(tmp_path) == record and training_dataset(tmp_path) == "fashion_mnist"
    bundled = read_training_record(REPO / "pretrained" / "cvae")  # written before the schema had a version
    assert bundled.dataset == "mnist" and bundled.command.startswith("python -m train --model cvae")
    (tmp_path / "training_args.json").write_text('{"args": {}}')
    with pytest.raises(ExportError, match="needs 'command'"):
        read_training_record(tmp_path)


def test_evaluate_scores_a_fashion_model_on_fashion_mnist(tmp_path, capsys):
    from train.evaluate import main as evaluate_main

    torch.manual_seed(0)
    vae_models.build_model("vae", hidden_dims=[16], latent_dim=2).save_pretrained(tmp_path / "vae")
    write_training_record(tmp_path / "vae", TrainingRecord("python -m train ...", {"dataset": "fashion_mnist"}))
    vae_models.build_model("classifier", hidden_dims=[4], latent_dim=8).save_pretrained(tmp_path / "classifier")
    argv = [str(tmp_path / "vae"), "--data-dir", str(FASHION_DIR), "--limit", "20", "--num-samples", "2",
            "--classifier", str(tmp_path / "classifier")]
    assert evaluate_main(argv) == 0
    results = read_eval_results(tmp_path / "vae")
    assert {r.dataset for r in results} == {"fashion_mnist"}
    # The classifier was trained on MNIST (no record says otherwise): it does not judge Fashion-MNIST samples.
    assert "classifier_fd" not in {r.type for r in results} and "trained on fashion_mnist" in capsys.readouterr().err
    # Scored on Fashion-MNIST, not MNIST: pointing at the MNIST folder fails on the dataset check.
    assert evaluate_main([*argv[:1], "--data-dir", str(MNIST_DIR), *argv[3:]]) == 2


def test_evaluation_judges_with_the_checkpoint_of_the_model_that_classifies(monkeypatch):
    from train.evaluate import parse_args
    from vae_models import judge_checkpoint, registry

    assert judge_checkpoint() == "classifier"
    assert parse_args(["pretrained/vae"]).classifier == "pretrained/classifier"
    monkeypatch.delitem(registry.MODELS, "classifier")
    with pytest.raises(ConfigError, match="no registered model classifies digits"):
        judge_checkpoint()
