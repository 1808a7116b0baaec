"""What the trainer gives a semi-supervised model (TrainConfig.labelled_examples, validation_examples): which training
digits keep their labels, the labelled minibatch of every step, and the validation digits it holds out."""

from __future__ import annotations

import pytest
import torch

from train.evaluate import validation_set
from train.trainer import TrainConfig, TrainError, Trainer, labelled_digits
from vae_models.data import load_mnist
from tests.tiny_runs import restore_denormals, tiny_vae_config  # noqa: F401 (autouse fixture)

SEMI = {"hidden_dims": [8], "latent_dim": 2, "num_clusters": 10, "semi_supervised": True,
        "discriminator_hidden_dims": [4]}


def semi_config(run, mnist_dir, **changes) -> TrainConfig:
    return TrainConfig(**{"model": "categorical_aae", "model_config": SEMI, "data_dir": str(mnist_dir),
                          "batch_size": 8, "max_steps": 3, "checkpoint_every": 0, "output_dir": str(run),
                          "progress_bar": False, "sync_every": 1, "labelled_examples": 20,
                          "validation_examples": 1000, **changes})


def test_labelled_digits_are_n_over_ten_of_each_class_drawn_by_the_seed():
    labels = torch.arange(1000) % 10
    chosen = labelled_digits(labels, TrainConfig(labelled_examples=30, seed=4))
    assert len(chosen) == 30 and torch.bincount(labels[chosen]).tolist() == [3] * 10
    assert torch.equal(chosen, labelled_digits(labels, TrainConfig(labelled_examples=30, seed=4)))
    assert not torch.equal(chosen, labelled_digits(labels, TrainConfig(labelled_examples=30, seed=5)))
    assert torch.equal(labelled_digits(labels, TrainConfig()), torch.arange(1000))


def test_a_class_with_too_few_digits_for_its_share_of_labels_is_an_error():
    labels = torch.tensor([0] * 50 + [1] * 2 + list(range(2, 10)) * 5)
    with pytest.raises(TrainError, match="fewer than 3 digits"):
        labelled_digits(labels, TrainConfig(labelled_examples=30))


def test_each_steps_labelled_minibatch_holds_only_the_labelled_digits_with_their_labels(tmp_path, mnist_dir):
    trainer = Trainer(semi_config(tmp_path / "run", mnist_dir))
    seen = []
    loss = trainer.model.loss

    def recording(batch, labelled=None):
        seen.append(labelled)
        return loss(batch, labelled=labelled)

    trainer.model.loss = recording
    list(trainer.steps())
    index = trainer.labelled_index
    pool = trainer.images[index].float().div(255).flatten(1)
    assert len(seen) == 3
    for images, labels in seen:
        assert images.shape == (8, 1, 28, 28)
        match = (images.flatten(1)[:, None, :] == pool[None]).all(-1)  # (8, 20): which labelled digit each is
        assert match.any(1).all()
        assert torch.equal(labels, trainer.labels[index][match.float().argmax(1)])


def test_the_labelled_minibatch_of_a_step_is_the_same_in_a_resumed_run(tmp_path, mnist_dir):
    first = Trainer(semi_config(tmp_path / "a", mnist_dir))
    first._prepare()
    again = Trainer(semi_config(tmp_path / "b", mnist_dir))
    again._prepare()
    a, b = first._labelled_batch(7, 8), again._labelled_batch(7, 8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(first._labelled_batch(8, 8)[1], a[1])


def test_validation_digits_are_held_out_of_training_and_found_again_by_evaluation(tmp_path, mnist_dir):
    trainer = Trainer(semi_config(tmp_path / "run", mnist_dir, save_pretrained=str(tmp_path / "export")))
    assert len(trainer.images) == 59_000
    trainer.run()
    grey, labels = validation_set(tmp_path / "export", str(mnist_dir))
    assert len(labels) == 1000
    images, all_labels = load_mnist("train", data_dir=str(mnist_dir))
    assert torch.equal(grey, images[-1000:].float().div(255).unsqueeze(1)) and torch.equal(labels, all_labels[-1000:])
    assert torch.equal(trainer.images, images[:-1000])


def test_labels_for_a_model_that_does_not_learn_from_them_are_refused(tmp_path, mnist_dir):
    with pytest.raises(TrainError, match="does not learn from a labelled minibatch"):
        Trainer(tiny_vae_config(tmp_path / "run", labelled_examples=20))


@pytest.mark.parametrize("changes, message", [
    ({"labelled_examples": 15}, "multiple of 10"),
    ({"labelled_examples": 0}, "multiple of 10"),
    ({"validation_examples": -1}, "validation-examples"),
])
def test_impossible_label_or_validation_counts_are_refused(tmp_path, mnist_dir, changes, message):
    with pytest.raises(TrainError, match=message):
        Trainer(semi_config(tmp_path / "run", mnist_dir, **changes))


def test_a_separate_regularisation_phase_gets_its_own_optimiser_and_moves_only_the_encoder(tmp_path, mnist_dir):
    """The categorical AAE's regularisation phase (model.regularisation_parameters()) is a third Adam step after the
    discriminators' and the reconstruction's; its backward reaches the encoder alone."""
    trainer = Trainer(semi_config(tmp_path / "run", mnist_dir, labelled_examples=None))
    trainer._prepare()
    model = trainer.model
    assert len(trainer.optimizers) == 3
    assert [id(p) for p in trainer.optimizers[-1].optimizer.param_groups[0]["params"]] == \
        [id(p) for p in model.encoder.parameters()]
    images, labels = trainer.data.__getitems__(torch.arange(8, device=trainer.accelerator.device))
    terms = trainer._gradients(trainer.optimizers[-1], images, labels, discriminator=False,
                               prefix="train/regularisation/", regularisation=True)
    assert {"train/regularisation/clusters_adversarial", "train/regularisation/style_adversarial"} <= set(terms)
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert all(p.grad is None for p in [*model.decoder.parameters(), *model.discriminator_parameters()])
    assert all(p.requires_grad for p in model.parameters())  # the other players are trainable again
