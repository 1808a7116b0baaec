"""train.card: what a model card says about the checkpoint it describes."""

import shutil
from pathlib import Path

from train.card import build_card
from vae_models import checkpoints

ROOT = Path(__file__).resolve().parents[1]


def test_a_checkpoint_that_declares_its_purpose_has_its_card_say_it(tmp_path):
    export = shutil.copytree(ROOT / "pretrained/dvae", tmp_path / "anywhere")
    purpose = checkpoints()["dvae"][0].purpose
    assert purpose  # the strong-noise DVAE says it is the Denoising tab's, not the paper's protocol
    card = build_card(export, repo_id="vae-family/mnist-dvae").text
    assert f"This checkpoint (`dvae`): {purpose}" in card
    assert f"This checkpoint (`dvae`): {purpose}" in build_card(ROOT / "pretrained/dvae").text  # named by its folder


def test_no_purpose_line_for_a_checkpoint_without_one_or_an_export_of_another_model(tmp_path):
    assert not checkpoints()["cvae"][0].purpose
    assert "This checkpoint" not in build_card(ROOT / "pretrained/cvae").text
    export = shutil.copytree(ROOT / "pretrained/cvae", tmp_path / "dvae")  # a cvae in a folder named like the dvae
    assert "This checkpoint" not in build_card(export).text
