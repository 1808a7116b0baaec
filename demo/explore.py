"""Tab "Explore a digit": one digit through every model (reconstructions, and under each likelihood model how
digit-like the digit is: its log-likelihood and its complexity-corrected score as percentiles of the test set's,
vae_models/typicality.py), and latent traversals of the VAE and of the CVAE's style code along their most used
dimensions. The models are those that declare each view (`spec`, vae_models/registry.py): this module names none."""

from __future__ import annotations

import functools

import torch

from vae_models import checkpoints, latent, typicality

from .common import (bind, digit_examples, digit_inputs, example_choices, first_visit, intro, read_digit, seeded,
                     to_image)
from .priors import _test_set
from .weights import (ModelStore, ModelUnavailable, featured, label_judge, reference_for, sampler_checkpoints,
                      traversal_checkpoints)

MAX_DIMS, MAX_STEPS, SWEEP = 10, 15, 3.0  # sweep from -SWEEP to +SWEEP prior standard deviations


def every_model_checkpoints() -> dict[str, str]:
    """The unconditional models of the family as the models declare them (the samplers' checkpoints, in registration
    order): store name -> column title."""
    return {name: checkpoint.title for name, checkpoint in sampler_checkpoints().items()}


def traversal_choices() -> dict[str, str]:
    """The checkpoints declared `traversal`, as the Radio's (label -> store name): a label-conditional model's code
    is its style, the label stays fixed."""
    return {f"{c.title} (style code z; the label stays fixed)" if spec.label_conditional else c.title: name
            for name, (c, spec) in checkpoints().items() if c.traversal}


INTRO = f"""### Explore a digit
**Every model** reconstructs your digit, and every model with a likelihood (VAE, DVAE, AVB and AAE) says how
digit-like it is, with two numbers placed on the MNIST test set's distribution of the same numbers:
- **log p(x)**, estimated by importance sampling (k = {typicality.NUM_SAMPLES}) with the model's own q(z|x), or, for
  the AAE, which has a decoder and a prior but no encoder density, by annealed importance sampling (T =
  {typicality.AIS_STEPS}, {typicality.AIS_CHAINS} chains). Its percentile is the share of test digits the model finds
  *less* likely. Letters and scribbles land in the bottom tail. But high likelihood is not typicality: a dash, a
  faint line or an almost empty canvas has few ink pixels to explain, so the model finds it *as likely as a digit or
  more* (Nalisnick et al. 2019, "Do deep generative models know what they don't know?").
- **S(x) = −log₂ p(x) − L(x)**, the likelihood corrected for how simple the image is (Serrà et al. 2020, "Input
  complexity and out-of-distribution detection"): L(x) is the number of bits a generic compressor for black-and-white
  images (JBIG-style context model) needs. The model codes a real digit in far fewer bits than the compressor does
  (S very negative); a dash costs the compressor only a few dozen bits but the model about as many as a digit, so
  its S is high; a letter surprises the model but not the compressor, so its S is high too.

**One verdict from all the models.** Each model tests the digit three ways: log p(x) too low, log p(x) too high (two
specks can be *more* likely than any digit), S(x) too high. The verdict takes the most extreme of all these tests
over all the models, and flags the digit when it is further out than {typicality.FLAG_RATE:g} % of the real test
digits' own most extreme test: the models' agreement is measured on the test digits, not assumed. The AE has no
likelihood. **Latent traversal** moves one latent dimension at a time from −3 to +3 prior standard deviations around
your digit's code, for the dimensions that carry the most information (average KL)."""


# ------------------------------------------------------------------------------------------- every model


def meter(percentile: float, width: int = 20) -> str:
    filled = round(percentile / 100 * width)
    return "█" * filled + "░" * (width - filled)


TESTS_IN_WORDS = {"too unlikely": "log p(x) is lower than for", "too likely": "log p(x) is higher than for",
                  "too simple": "S(x) is higher than for"}  # "... 99.9 % of the test digits"


def meter_row(title: str, a: typicality.Assessment, likelihood: typicality.LikelihoodReference,
              deciding: bool = False) -> str:
    """One model's row of the meter table: both statistics, their percentiles, and how far out its most extreme
    test puts the image (in bold on the row that decides the verdict)."""
    level, _, test = typicality.most_extreme_test(a)
    share = 100 * (1 - level * typicality.TAIL_SHARES[test])
    extreme = f"{TESTS_IN_WORDS[test]} {share:.1f} % of the {likelihood.size} test digits"
    if deciding:
        extreme = f"**{extreme}**"
    return (f"| {title} | {a.log_px:.1f} (test median {likelihood.median():.1f}) | `{meter(a.likelihood_percentile)}` "
            f"{a.likelihood_percentile:.1f} % | {a.score:+.0f} bits (L = {a.bits:.0f}): `{meter(a.score_percentile)}` "
            f"{a.score_percentile:.1f} % | {extreme} |")


def verdict_line(verdict: typicality.JointVerdict, titles: dict[str, str], size: int) -> str:
    """The one verdict in words: which model's test decides it, and the joint threshold's false-flag budget."""
    models = ", ".join(titles.values())
    threshold = f"the joint threshold, which {typicality.FLAG_RATE:g} % of the {size} test digits cross"
    if verdict.flagged:
        return (f"**Verdict over {models}: atypical, {verdict.test}.** The most extreme test of all is the "
                f"{titles[verdict.model]}'s (in bold): beyond {threshold}.")
    return (f"**Verdict over {models}: typical.** No model's test puts it beyond {threshold}; the most extreme is "
            f"the {titles[verdict.model]}'s (in bold).")


_JOINT_METERS: dict[tuple, typicality.JointMeter] = {}


def joint_meter(references: dict[str, tuple]) -> typicality.JointMeter:
    """The JointMeter over these models' references, built once per set of reference objects (`_reference` keeps
    each file's object until the file changes, and the meter keeps the objects its key names alive)."""
    key = tuple((name, id(likelihood), id(corrected)) for name, (likelihood, corrected) in references.items())
    if key not in _JOINT_METERS:
        if len(_JOINT_METERS) >= 8:
            _JOINT_METERS.pop(next(iter(_JOINT_METERS)))
        _JOINT_METERS[key] = typicality.JointMeter(references)
    return _JOINT_METERS[key]


@torch.no_grad()
def every_model(store: ModelStore, sketch, upload, example):
    """(the preprocessed digit, one reconstruction per model (None where unavailable), a Markdown table of the
    log-likelihoods, the complexity-corrected scores and their test-set percentiles, under one joint verdict)."""
    x, _, source = read_digit(sketch, upload, example)
    with seeded(0):  # the AVB's reconstruction averages noise draws: the same digit, the same picture
        return _every_model(store, x, source)


def _every_model(store: ModelStore, x, source: str):
    images, rows, missing, metered = [], {}, [], {}
    columns = every_model_checkpoints()
    for name, title in columns.items():
        try:
            model = store.get(name)
        except ModelUnavailable as exc:
            images.append(None)
            missing.append(str(exc))
            continue
        images.append(to_image(model.reconstruct(x.to(model.device))))
        if not typicality.has_likelihood(model):
            rows[name] = f"| {title} | no likelihood | — | — | — |"
            continue
        try:
            likelihood = reference_for(store, name)
            corrected = reference_for(store, name, typicality.ComplexityReference)
        except typicality.ReferenceError as exc:
            log_px = float(typicality.log_likelihood(model, x)[0])
            rows[name] = f"| {title} | {log_px:.1f} | not available ({exc}) | — | — |"
            continue
        metered[name] = (typicality.assess(model, x, likelihood, corrected)[0], likelihood, corrected)
    if len(missing) == len(columns):
        raise ModelUnavailable(" ".join(missing))
    verdict = ""
    if metered:
        try:
            joint = joint_meter({name: (l, c) for name, (_, l, c) in metered.items()})
            decided = joint.verdict({name: a for name, (a, _, _) in metered.items()})
            verdict = verdict_line(decided, {name: columns[name] for name in metered}, joint.reference_levels.size)
        except typicality.ReferenceError as exc:
            decided, verdict = None, f"No joint verdict: {exc}"
        for name, (a, likelihood, _) in metered.items():
            rows[name] = meter_row(columns[name], a, likelihood, deciding=decided is not None and decided.model == name)
    table = (verdict + "\n\n| model | log p(x), nats | log p(x) among test digits | S(x) = −log₂ p(x) − L(x) among "
             "test digits | its most extreme test |\n|---|---|---|---|---|\n" +
             "\n".join(rows[name] for name in columns if name in rows) +
             f"\n\nThe digit is {source}, binarised at {typicality.THRESHOLD} as the models' training data was; L(x) "
             "is its length in bits under a JBIG-style compressor.")
    if missing:
        table += "\n\n" + " ".join(missing)
    shown = to_image(typicality.binarize(x))
    return (shown, *images, table)


# ------------------------------------------------------------------------------------------- latent traversal


@functools.lru_cache(maxsize=8)
def _statistics(store: ModelStore, name: str, model_id: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(average KL per dimension, activity per dimension, which images they were measured on) over the test set
    the app can read (the real one, else the 20 bundled digits)."""
    model = store.get(name)
    images, labels, source = _test_set(store.data_dir, store.hub)
    mean_kl, activity = latent.latent_statistics(model, images, labels if model.spec.label_conditional else None)
    return mean_kl, activity, f"{len(images)} {source}"


def _label_for(store: ModelStore, x: torch.Tensor, known: int | None) -> tuple[int, str]:
    if known is not None:
        return known, "its test-set label"
    return int(store.get(label_judge()).predict(x)[0]), "the classifier's prediction"


@torch.no_grad()
def traverse(store: ModelStore, sketch, upload, example, model_name: str, num_dims: int, num_steps: int):
    """(the preprocessed digit, a grid: one row per latent dimension (most KL first), one column per offset from
    -3 to +3 around the digit's code, a note with the active units)."""
    if model_name not in traversal_checkpoints():
        raise ValueError(f"unknown model {model_name!r}; choose one of {list(traversal_checkpoints())}")
    if not 1 <= int(num_dims) <= MAX_DIMS or not 3 <= int(num_steps) <= MAX_STEPS:
        raise ValueError(f"dimensions must be 1-{MAX_DIMS} and steps 3-{MAX_STEPS}")
    x, known, source = read_digit(sketch, upload, example)
    model = store.get(model_name)
    labels, label_note = None, ""
    if model.spec.label_conditional:
        label, how = _label_for(store, x, known)
        labels = torch.tensor([label], device=model.device)
        label_note = f" Label **{label}** ({how}) is kept fixed, so only the style moves."
    mean_kl, activity, measured_on = _statistics(store, model_name, id(model))
    order = torch.argsort(mean_kl, descending=True).tolist()
    dims = order[: min(int(num_dims), len(order))]
    code = model.encode(x.to(model.device), labels).mean[0].cpu()
    offsets = torch.linspace(-SWEEP, SWEEP, int(num_steps))
    z = latent.traversal(code, dims, offsets).float()  # prior std is 1: offsets are in standard deviations
    y = None if labels is None else labels.repeat(len(z))
    grid = to_image(model.decode(z.to(model.device), y), nrow=int(num_steps), scale=2)
    active = latent.active_units(activity)
    listing = ", ".join(f"z{u} ({float(mean_kl[u]):.2f} nats)" for u in dims)
    note = (f"**{active} of {len(activity)} latent dimensions are active** (Burda et al. 2015: Cov_x(E_q[z_u]) > "
            f"{latent.ACTIVITY_THRESHOLD}, measured on {measured_on}). Rows, by average KL: {listing}. Columns: "
            f"z_u from {-SWEEP:+.0f} to {SWEEP:+.0f} around {source}'s code.{label_note}")
    return to_image(x), grid, note


def build(store: ModelStore) -> None:
    import gradio as gr

    ex = example_choices()
    columns = every_model_checkpoints()
    intro(INTRO, store, list(columns))
    shown0, *recons0, table0 = first_visit(every_model, store, None, None, ex[13], outputs=len(columns) + 2)
    gr.Markdown("#### Your digit, every model")
    with gr.Row():
        with gr.Column(scale=1):
            digit = digit_inputs("Your digit", 13)
            run_btn = gr.Button("Run through every model", variant="primary")
        shown = gr.Image(shown0, type="pil", label="What the models see (binarised)", format="png", height=140,
                         scale=0)
    with gr.Row():
        recons = [gr.Image(value, type="pil", label=f"{title} reconstruction", format="png", height=140,
                           elem_id=f"every-{name}") for value, (name, title) in zip(recons0, columns.items())]
    table = gr.Markdown(table0, elem_id="digit-meter")
    run_btn.click(bind(every_model, store), [*digit], [shown, *recons, table], api_name="every_model")
    digit_examples([digit[2]], [[ex[13]], [ex[4]], [ex[17]]],
                   lambda x: bind(every_model, store)(None, None, x), [shown, *recons, table])

    gr.Markdown("#### Latent traversal")
    choices = traversal_choices()
    # Opens on the featured one; the examples show it twice and the last declared once (the CVAE's style code).
    first, last = featured(choices.values(), "traversal=True"), list(choices.values())[-1]
    with gr.Row():
        with gr.Column(scale=1):
            t_digit = digit_inputs("Digit to traverse", 0)
            t_model = gr.Radio(list(choices.items()), value=first, label="Model")
            t_dims = gr.Slider(1, MAX_DIMS, value=5, step=1, label="Dimensions (most active first)")
            t_steps = gr.Slider(3, MAX_STEPS, value=9, step=1, label="Steps from -3 to +3 std")
            t_btn = gr.Button("Traverse", variant="primary")
        with gr.Column(scale=2):
            t_input0, t_grid0, t_note0 = first_visit(traverse, store, None, None, ex[0], first, 5, 9, outputs=3)
            t_input = gr.Image(t_input0, type="pil", label="Input", format="png", height=140)
            t_grid = gr.Image(t_grid0, type="pil", label="Traversal (row: dimension, column: offset)", format="png",
                              elem_id="traversal-out")
            t_note = gr.Markdown(t_note0)
    t_btn.click(bind(traverse, store), [*t_digit, t_model, t_dims, t_steps], [t_input, t_grid, t_note],
                api_name="traverse")
    digit_examples([t_digit[2], t_model], [[ex[0], first], [ex[9], first], [ex[14], last]],
                   lambda x, m: bind(traverse, store)(None, None, x, m, 5, 9), [t_input, t_grid, t_note])

