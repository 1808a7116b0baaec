"""Mutation testing of the library's mathematics and metrics, the trainer's evaluation and resume paths and the demo's
weight loading, with mutmut (pinned in requirements-mutation.txt; not part of the default CI run).

    python tests/mutation/run.py GROUP [GROUP ...] [--work DIR] [--children N] [--resume] [--mutants GLOB ...]
    python tests/mutation/run.py --summary [--work DIR]        # the results table (markdown) of the groups run

Each group mutates a few modules and runs only the fast, in-process tests that exercise them (mutmut records which
tests reach each function and runs just those for its mutants). The project is copied (tracked and untracked,
non-ignored files) into DIR/GROUP, so the working tree is never touched; shared/ is linked beside the copy, as it
is beside a checkout. Runs niced, one thread per test process. See tests/mutation/README.md for the results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
COPIED = ["pretrained", "recipes", "README.md", "pyproject.toml", "app.py", "benchmarks"]  # and packages, tests/

# group -> (files mutated, test files run). Tests that start subprocesses are left out: mutmut cannot see which
# functions a subprocess reaches, and they are slow; the in-process tests below cover the same paths.
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "models": (
        ["vae_models/ae.py", "vae_models/vae.py", "vae_models/cvae.py", "vae_models/dvae.py", "vae_models/avb.py",
         "vae_models/aae.py", "vae_models/socvae.py", "vae_models/classifier.py", "vae_models/blocks.py",
         "vae_models/base.py"],
        ["tests/test_models.py", "tests/test_loss_terms.py", "tests/test_math.py", "tests/test_avb.py",
         "tests/test_denoising_and_conditional_models.py", "tests/test_avb_contrast.py", "tests/test_binarisation.py",
         "tests/test_quadrant_exact.py", "tests/test_cb_normaliser.py", "tests/test_hub_options.py",
         "tests/test_base.py", "tests/test_avb_encoders.py", "tests/test_gaussian_elbo.py", "tests/test_ae.py",
         "tests/test_classifier.py", "tests/test_aae.py", "tests/test_socvae.py", "tests/test_blocks.py",
         "tests/test_bundled_weights.py::test_cvae_samples_follow_the_label_by_the_bundled_classifier",
         "tests/test_metric_values.py::test_importance_sampling_scores_with_the_models_own_pixel_likelihood",
         "tests/test_ais.py::test_prior_densities_integrate_to_one_and_match_their_samplers"],
    ),
    "metrics": (["vae_models/metrics.py"], ["tests/test_metrics.py", "tests/test_metric_values.py",
                                            "tests/test_metric_progress.py"]),
    "inputs": (
        ["vae_models/preprocess.py", "vae_models/corruption.py"],
        ["tests/test_preprocess_properties.py", "tests/test_preprocess_geometry.py",
         "tests/test_preprocess_decoding.py", "tests/test_preprocess_grayscale.py",
         "tests/test_preprocess_ink.py", "tests/test_corruption_exact.py", "tests/test_demo_handlers.py",
         "tests/test_denoising_and_conditional_models.py"],
    ),
    "trainer": (
        ["train/evaluate.py", "train/trainer.py"],
        ["tests/test_metric_values.py", "tests/test_metrics.py", "tests/test_trainer_inprocess.py",
         "tests/test_evaluate_paths.py", "tests/test_checkpoint_paths.py", "tests/test_binarisation.py",
         "tests/test_trainer_order_and_rewrites.py",
         "tests/test_ais.py::test_evaluate_ais_only_merges_ais_nll_with_its_bdmc_gap",
         "tests/test_registry.py::test_evaluate_scores_a_fashion_model_on_fashion_mnist"],
    ),
    "demo_weights": (["demo/weights.py"], ["tests/test_demo_handlers.py", "tests/test_weights.py"]),
}


# Left out of every group: the 20 s AAE training test (its mutants are caught by the faster tests of the same code)
# and the tests that only drive subprocesses.
DESELECT = "not pulls_codes_to_the_prior and not hub_mode_downloads_only_safe and not app_py_starts"
# Statements not mutated: `raise ...(message)`. The conditions that raise are mutated; a mutated message wording would
# survive wherever a test checks only the error type and the key phrase, which is what the tests promise.
DO_NOT_MUTATE = [r"^\s*raise\b"]


def setup_cfg(mutated: list[str], tests: list[str]) -> str:
    lines = "\n    ".join
    return f"""[mutmut]
source_paths =
    vae_models
    train
    demo
only_mutate =
    {lines(mutated)}
also_copy =
    {lines(COPIED)}
pytest_add_cli_args_test_selection =
    {lines(tests)}
pytest_add_cli_args =
    -p
    no:cacheprovider
    -q
    -x
    -k
    {DESELECT}
do_not_mutate_patterns =
    {lines(DO_NOT_MUTATE)}
process_isolation = forkserver
use_git_change_detection = false
timeout_multiplier = 10.0
timeout_constant = 20.0
"""


def copy_project(target: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def run_group(group: str, work: Path, children: int, resume: bool, mutants: list[str], nice: int) -> None:
    mutated, tests = GROUPS[group]
    target = work / group
    if not (resume and (target / "mutants").is_dir()):  # resume: mutmut skips the mutants it already has results for
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        copy_project(target)
        (target / "setup.cfg").write_text(setup_cfg(mutated, tests))
    # tests read ../shared/data/mnist relative to the project (and to mutmut's mutants/ copy inside it)
    if SHARED.is_dir() and not (target / "shared").exists():
        (target / "shared").symlink_to(SHARED)
        if not (work / "shared").exists():
            (work / "shared").symlink_to(SHARED)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_DISABLE_TELEMETRY": "1", "TQDM_DISABLE": "1"}
    mutmut = [sys.executable, "-m", "mutmut"]
    subprocess.run(["nice", "-n", str(nice), *mutmut, "run", "--max-children", str(children), *mutants], cwd=target, env=env)
    results = subprocess.run([*mutmut, "results", "--all", "true"], cwd=target, env=env, capture_output=True,
                             text=True).stdout
    (target / "results.txt").write_text(results)


def statuses(work: Path, group: str) -> dict[str, dict[str, int]]:
    """module -> {status: count} from `mutmut results --all true` ("    vae_models.vae.xǁVAEǁloss__mutmut_3: killed")."""
    counts: dict[str, dict[str, int]] = {}
    for line in (work / group / "results.txt").read_text().splitlines():
        name, _, status = line.strip().rpartition(": ")
        if "__mutmut_" not in name:
            continue
        module = name.split(".x")[0] if ".x" in name else name.rsplit(".", 1)[0]
        by_status = counts.setdefault(module, {})
        by_status[status] = by_status.get(status, 0) + 1
    return counts


def summary(work: Path) -> str:
    rows = ["| module | mutants | killed | survived | timed out | no tests | killed share |",
            "|---|---|---|---|---|---|---|"]
    for group in GROUPS:
        if not (work / group / "results.txt").is_file():
            continue
        for module, c in sorted(statuses(work, group).items()):
            total = sum(c.values())
            killed, timeout = c.get("killed", 0), c.get("timeout", 0)
            rows.append(f"| {module} | {total} | {killed} | {c.get('survived', 0)} | {timeout} | "
                        f"{c.get('no tests', 0)} | {(killed + timeout) / total:.1%} |")
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("groups", nargs="*", help=f"groups to run: {', '.join(GROUPS)}")
    p.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "vae-family-mutation")
    p.add_argument("--children", type=int, default=1, help="mutants tested at once (default 1: a shared machine)")
    p.add_argument("--nice", type=int, default=10, help="niceness of the mutation run (default 10: a shared machine)")
    p.add_argument("--summary", action="store_true", help="print the results table of the groups already run")
    p.add_argument("--resume", action="store_true", help="continue the groups' previous runs instead of starting over")
    p.add_argument("--mutants", nargs="+", default=[], metavar="GLOB",
                   help="run only the mutants whose names match, e.g. 'vae_models.aae.*' (with --resume: add a module)")
    args = p.parse_args()
    if unknown := set(args.groups) - set(GROUPS):
        p.error(f"unknown groups {sorted(unknown)}; choose from {list(GROUPS)}")
    for group in args.groups:
        run_group(group, args.work, args.children, args.resume, args.mutants, args.nice)
    if args.summary or args.groups:
        print(summary(args.work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
