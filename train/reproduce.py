"""Rebuild bundled weights from their recipes: train, evaluate, write the export and its card.

    python -m train.reproduce vae --data-dir ../shared/data/mnist            # -> runs/reproduce/vae
    python -m train.reproduce --all --data-dir ../shared/data/mnist
    python -m train.reproduce vae-2d --quick                                 # 200 steps, a quick evaluation
    python -m train.reproduce --all --output-root pretrained --overwrite     # replace the bundled weights
    python -m train.reproduce vae --runs-root resume --resume               # continue a run committed in resume/vae

One recipe per bundled weight, `recipes/<name>.json` (the checkpoint catalogue, vae_models/catalogue.py): {"model",
"checkpoint", "model_config", "train": {trainer arguments}, "evaluate": [extra `train.evaluate` arguments]}. Each name
runs `python -m train --config recipes/<name>.json ...`, then `python -m train.evaluate` on the export (with the
classifier of this run when it was rebuilt too, else the bundled one), then rewrites the model card. Exports go to
`--output-root/<name>` and run folders to `--runs-root/<name>`; an existing export is never replaced unless
`--overwrite` is given, so the bundled pretrained/ folder is only touched on request.

`--quick` checks that a recipe still runs end to end: QUICK_STEPS (200) steps, then an evaluation on the first 100
test digits with few importance samples. Its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from vae_models import checkpoints, judge_checkpoint

from .card import CardError, write_card
from .recipe import RECIPES_DIR, RecipeError, read_recipe

REPO_ROOT = Path(__file__).resolve().parents[1]
QUICK_STEPS = 200
QUICK_EVAL = ["--limit", "100", "--num-samples", "20", "--cll-samples", "5"]


class ReproduceFailed(RuntimeError):
    """A training or evaluation step exited with an error (its own message is above)."""


def recipe_names(recipes_dir: Path) -> list[str]:
    """Every recipe, the classifier's first (the others' evaluation needs it), then the declared order."""
    names = sorted(p.stem for p in recipes_dir.glob("*.json"))
    declared = list(checkpoints())
    judges = [n for n in names if n in declared and checkpoints()[n][1].classifies]
    return judges + sorted((n for n in names if n not in judges),
                           key=lambda n: declared.index(n) if n in declared else len(declared))


def shown(path: str | Path) -> str:
    """A path as the recorded commands show it: relative to the repository when it lies beside or inside it
    (`recipes/vae.json`, `../shared/data/mnist`), else absolute. The commands run from the repository root."""
    path = Path(path).resolve()
    return os.path.relpath(path, REPO_ROOT) if path.is_relative_to(REPO_ROOT.parent) else str(path)


def run(cmd: list[str]) -> None:
    """Run a `python -m ...` command with this interpreter, from the repository root (where the recorded command
    is valid), stopping everything if it fails."""
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, *cmd[1:]], cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise ReproduceFailed(f"`{' '.join(cmd)}` failed with exit status {proc.returncode}")


def reproduce(name: str, args: argparse.Namespace) -> Path:
    recipe_path = Path(args.recipes) / f"{name}.json"
    recipe = read_recipe(recipe_path)
    export = Path(args.output_root).resolve() / name
    run_dir = Path(args.runs_root).resolve() / name
    if (export / "model.safetensors").exists() and not args.overwrite:
        raise RecipeError(f"{export} already holds an export; pass --overwrite to replace it")
    if (run_dir / "checkpoints").exists() and not args.resume:
        if not args.overwrite:
            raise RecipeError(f"{run_dir} holds an earlier run; pass --resume to continue it or --overwrite to start "
                              "it afresh")
        shutil.rmtree(run_dir)
    data = ["--data-dir", shown(args.data_dir)] if args.data_dir else []
    train = ["python", "-m", "train", "--config", shown(recipe_path), *data, "--output-dir", shown(run_dir),
             "--save-pretrained", shown(export)]
    if args.quick:
        train += ["--max-steps", str(args.quick_steps), "--checkpoint-every", "0"]
    if args.resume:  # continues RUNS_ROOT/<name> from its latest checkpoint (a fresh start when it has none)
        train += ["--resume"]
    run(train)

    judge = judge_checkpoint()  # trained first (recipe_names) when it is among the recipes; else the bundled one
    own_classifier = Path(args.output_root).resolve() / judge
    classifier = own_classifier if (own_classifier / "model.safetensors").exists() else REPO_ROOT / "pretrained" / judge
    evaluate = ["python", "-m", "train.evaluate", shown(export), *data, "--classifier", shown(classifier),
                *recipe.get("evaluate", [])]
    if args.quick:
        evaluate += QUICK_EVAL
    if args.device != "cpu":  # training picks the accelerator itself (Accelerate); evaluation is told
        evaluate += ["--device", args.device]
    run(evaluate)
    write_card(export, repo_id=f"vae-family/mnist-{name}")
    return export


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.reproduce", description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="recipe names (recipes/<name>.json), e.g. vae vae-2d")
    p.add_argument("--all", action="store_true", help="every recipe, the classifier first")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_STEPS} steps and a quick evaluation (a smoke test)")
    p.add_argument("--quick-steps", type=int, default=QUICK_STEPS, help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help="folder with the dataset's IDX files (default: the download cache)")
    p.add_argument("--recipes", default=str(RECIPES_DIR), help="folder of recipe files (default: recipes/)")
    p.add_argument("--output-root", default="runs/reproduce", help="exports go to OUTPUT_ROOT/<name>")
    p.add_argument("--runs-root", default="runs/reproduce-runs", help="run folders go to RUNS_ROOT/<name>")
    p.add_argument("--device", default="cpu", help="torch device of the evaluation (training uses what Accelerate "
                   "finds: a GPU when there is one)")
    p.add_argument("--overwrite", action="store_true", help="replace existing exports (e.g. pretrained/)")
    p.add_argument("--resume", action="store_true", help="continue the run in RUNS_ROOT/<name> from its latest "
                   "checkpoint (e.g. a run folder committed to the repository by an earlier session)")
    args = p.parse_args(argv)
    if not Path(args.recipes).is_dir():
        p.error(f"--recipes {args.recipes} is not a folder (recipes ship with the repository, not the wheel)")
    known = recipe_names(Path(args.recipes))
    names = known if args.all else args.names
    if not names or (args.all and args.names):
        p.error("give recipe names or --all")
    unknown = [n for n in names if n not in known]
    if unknown:
        p.error(f"no recipe for {unknown}; known: {known}")
    try:
        for name in names:
            print(f"reproduced {name}: {reproduce(name, args)}", file=sys.stderr)
    except (RecipeError, CardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ReproduceFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
