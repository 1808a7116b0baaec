"""The "Explore a digit" and "Train one yourself" tabs on a real server: the app runs in a subprocess (its
huggingface_hub talks to a loopback Hub, tests/hub_server.py), every new endpoint is driven over HTTP by
gradio_client, both tabs are visited in headless Chromium (screenshots under the test's tmp path), and bad values
of every new control come back as clear messages."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import Status

from demo import live
from demo.common import example_choices
from demo.common import test_digits as bundled_digits
from demo.tiny_weights import make_tiny_weights
from train.recipe import RECIPES_DIR, read_recipe
from vae_models import checkpoints, get_spec, load_model, typicality

from .hub_server import hub_env, start_hub_server
from .meter_weights import tiny_weights_with_references

REPO = Path(__file__).resolve().parents[1]
NEW_ENDPOINTS = {"/every_model", "/traverse", "/train_live", "/stop_live", "/push_live"}
ZERO, SIX = example_choices()[0], example_choices()[13]
TOKEN = "hf_visitor_oauth_token"
SERVER = """
import sys, time
from demo import build_app
app = build_app(weights_dir=sys.argv[1], hub=False, data_dir=sys.argv[2], oauth=True)
_, url, _ = app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
print("URL", url, flush=True)
while True:
    time.sleep(3600)
"""


@pytest.fixture(scope="module")
def hub():
    server = start_hub_server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, hub, mnist_dir):
    tmp = tmp_path_factory.mktemp("explore_app")
    weights = tiny_weights_with_references(tmp / "weights")
    # HF_TOKEN: off a Space, gradio mocks the Hugging Face sign-in with the machine's own account (whoami at
    # launch); the app itself acts only with the token of the visitor's session or request.
    env = hub_env(hub.url, tmp, GRADIO_TEMP_DIR=str(tmp / "gradio"), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(weights), str(mnist_dir)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("URL "), f"the app did not start: {line!r}"
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False, oauth_token=TOKEN, httpx_kwargs={"timeout": 300})


def gray(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32)


def test_new_endpoints_are_named(client):
    assert NEW_ENDPOINTS <= set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])


def test_every_model_reconstructs_and_places_the_digit_on_the_test_distribution(client):
    shown, *recons, table = client.predict(None, None, SIX, api_name="/every_model")
    assert len(recons) == 5 and all(gray(p).shape == (128, 128) for p in [shown, *recons])
    assert set(np.unique(gray(shown))) <= {0.0, 255.0}  # what the models see: the binarised digit
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert "no likelihood" in rows["AE"]
    for name in ("VAE", "DVAE", "AVB", "AAE"):  # the AAE's log p(x) by AIS
        assert " % of the 20 test digits" in rows[name] and "bits (L = " in rows[name], table
        assert rows[name].count("%") >= 3, table  # two percentiles and its most extreme test
    assert sum("**" in rows[name] for name in ("VAE", "DVAE", "AVB", "AAE")) == 1, table  # the deciding row
    assert table.startswith("**Verdict over VAE, DVAE, AVB, AAE: "), table  # one verdict, over every likelihood model
    assert "test digit 13" in table and "S(x) = −log₂ p(x) − L(x) among test digits" in table


def test_traverse_sweeps_the_most_active_dimensions(client):
    digit, grid, note = client.predict(None, None, ZERO, "vae", 2, 5, api_name="/traverse")
    assert gray(grid).shape == (2 * 60 + 4, 5 * 60 + 4)  # 2 rows x 5 columns of 56 px digits with 4 px gaps
    assert "latent dimensions are active" in note and "10000 MNIST test digits" in note and "Rows, by average KL" in note
    # the CVAE keeps the label (here the test digit's own) and moves the style
    _, grid, note = client.predict(None, None, SIX, "cvae", 5, 3, api_name="/traverse")
    assert gray(grid).shape == (2 * 60 + 4, 3 * 60 + 4)  # the tiny CVAE has only 2 dimensions
    assert "Label **6** (its test-set label)" in note


def test_interpolate_offers_slerp(client):
    _, ae_lerp, vae_lerp, _, note = client.predict(None, None, ZERO, None, None, SIX, 5, "lerp", api_name="/interpolate")
    _, ae_slerp, vae_slerp, _, note_s = client.predict(None, None, ZERO, None, None, SIX, 5, "slerp",
                                                    api_name="/interpolate")
    assert "(slerp)" in note_s and "(lerp)" in note
    assert np.abs(gray(vae_lerp) - gray(vae_slerp)).mean() > 0  # the middle of the path differs
    assert np.abs(gray(vae_lerp)[:, :120] - gray(vae_slerp)[:, :120]).mean() < 1  # both start at the first digit


@pytest.mark.parametrize("api_name, args, message", [
    ("/every_model", (None, None, "test digit 99: a 7"), "test digit 99: a 7 is not in the list of choices"),
    ("/every_model", (None, None, None), "no digit given"),
    ("/traverse", (None, None, ZERO, "vae", 0, 5), "Value 0 is less than minimum value 1"),
    ("/traverse", (None, None, ZERO, "vae", 3, 99), "Value 99 is greater than maximum value 15"),
    ("/traverse", (None, None, ZERO, "aae", 3, 5), "'aae' .* is not in the list of choices"),
    ("/interpolate", (None, None, ZERO, None, None, SIX, 5, "cubic"), "'cubic' .* is not in the list of choices"),
    ("/train_live", ("GAN", 2, 0), "'GAN' .* is not in the list of choices"),
    ("/train_live", ("vae-2d", 0, 0), "Value 0 is less than minimum value 1"),
    ("/train_live", ("vae-2d", 91, 0), "Value 91 is greater than maximum value 90"),
    ("/train_live", ("vae-2d", 2, -1), "the seed must be"),
])
def test_bad_values_get_clear_messages(client, api_name, args, message):
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name=api_name)


def test_handlers_check_their_values_too(tmp_path, mnist_dir):
    """What the components do not check (or a caller of the Python functions passes) the handlers refuse."""
    from demo import explore, sampling
    from demo.weights import ModelStore

    store = ModelStore(make_tiny_weights(tmp_path / "weights"), hub=False, data_dir=str(mnist_dir))
    for bad, message in (({"num_dims": 11}, "dimensions must be 1-10"), ({"num_steps": 2}, "steps 3-15"),
                         ({"model_name": "aae"}, "unknown model 'aae'")):
        args = {"model_name": "vae", "num_dims": 3, "num_steps": 5, **bad}
        with pytest.raises(ValueError, match=message):
            explore.traverse(store, None, None, ZERO, **args)
    with pytest.raises(ValueError, match="interpolation must be one of"):
        sampling.interpolate(store, None, None, ZERO, None, None, SIX, 5, "cubic")
    training = live.LiveTraining(str(mnist_dir), tmp_path / "work")
    for args, message in ((("GAN", 2, 0), "unknown model 'GAN'"), (("vae-2d", 0.5, 0), "time budget must be 1-90 s"),
                          (("vae-2d", 91, 0), "time budget must be 1-90 s"),
                          (("vae-2d", "soon", 0), "must be numbers")):
        with pytest.raises(Exception, match=message):
            next(training.train(*args, "visitor"))
    # the references of a model are checked against its weights: a stale one is reported, not used
    typicality.save_reference(typicality.LikelihoodReference([-2.0, -1.0], 1, 1, "0" * 64), tmp_path / "weights/vae")
    table = explore.every_model(store, None, None, SIX)[-1]
    assert "not available" in table and "other weights" in table
    dvae = tmp_path / "weights/dvae"  # a good likelihood reference, a stale complexity reference
    typicality.save_reference(typicality.build_reference(load_model(str(dvae)), bundled_digits()[0][:4],
                                                         typicality.file_sha256(dvae / "model.safetensors"),
                                                         num_samples=2, num_quantiles=3), dvae)
    typicality.save_reference(typicality.ComplexityReference([-2.0, -1.0], 1, 1, "0" * 64), dvae)
    row = next(line for line in explore.every_model(store, None, None, SIX)[-1].splitlines() if "| DVAE |" in line)
    assert "complexity_reference.json was computed with other weights" in row and "not available" in row


def test_the_meter_calls_a_dash_too_simple_and_a_test_digit_typical(tmp_path, mnist_dir):
    """The handler with the bundled weights and references: a drawn dash is as likely as a digit, and the complexity
    correction is what flags it; a real test digit passes."""
    from demo import explore
    from demo.weights import ModelStore

    dash = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(dash).line([(60, 140), (220, 140)], fill=0, width=6)
    dash.save(tmp_path / "dash.png")
    store = ModelStore(REPO / "pretrained", hub=False, data_dir=str(mnist_dir))
    dash_table = explore.every_model(store, None, str(tmp_path / "dash.png"), None)[-1]
    digit_table = explore.every_model(store, None, None, SIX)[-1]
    assert dash_table.startswith("**Verdict over VAE, DVAE, AVB, AAE: atypical, too simple.**"), dash_table
    assert digit_table.startswith("**Verdict over VAE, DVAE, AVB, AAE: typical.**"), digit_table
    rows = {line.split("|")[1].strip(): line.split("|") for line in dash_table.splitlines() if line.startswith("| ")}
    for name in ("VAE", "DVAE"):  # likelihood alone would pass it; S is what flags it
        assert float(rows[name][3].split("`")[-1].strip(" %")) > 15, rows[name]
        assert float(rows[name][4].split("`")[-1].strip(" %")) >= 99.9, rows[name]
        assert "S(x) is higher than for" in rows[name][5], rows[name]



def test_the_meter_row_names_its_most_extreme_test_and_the_verdict_the_deciding_model():
    """Each model's row says how far out its most extreme test puts the image, including the upper likelihood tail
    (an image more likely than almost every digit); the verdict line names the model and test that decide it."""
    from demo import explore

    likelihood = typicality.LikelihoodReference([-120.0, -90.0, -60.0], 1000, 100, "0" * 64)
    rows = {(0.2, 50.0): "log p(x) is lower than for 99.8 % of the 1000 test digits",
            (99.7, 50.0): "log p(x) is higher than for 99.7 % of the 1000 test digits",
            (50.0, 99.6): "S(x) is higher than for 99.6 % of the 1000 test digits",
            (50.0, 50.0): "S(x) is higher than for 50.0 % of the 1000 test digits"}  # S's budget is twice each tail's
    for (log_pct, s_pct), words in rows.items():
        row = explore.meter_row("VAE", typicality.Assessment(-70.0, 90.0, -10.0, log_pct, s_pct), likelihood)
        assert words in row and "**" not in row, row
    assert f"**{words}**" in explore.meter_row("VAE", typicality.Assessment(-70.0, 90.0, -10.0, 50.0, 50.0),
                                               likelihood, deciding=True)
    titles = {"vae": "VAE", "aae": "AAE"}
    flagged = explore.verdict_line(typicality.JointVerdict(True, "aae", "too likely", 1e-4, 2e-3), titles, 1000)
    assert flagged.startswith("**Verdict over VAE, AAE: atypical, too likely.** The most extreme test of all is "
                              "the AAE's")
    typical = explore.verdict_line(typicality.JointVerdict(False, "vae", "too simple", 0.2, 2e-3), titles, 1000)
    assert typical.startswith("**Verdict over VAE, AAE: typical.**") and "the VAE's" in typical
    assert "the joint threshold, which 1.5 % of the 1000 test digits cross" in typical

def unpack(zip_path, tmp_path) -> Path:
    with zipfile.ZipFile(zip_path) as z:
        names = set(z.namelist())
        z.extractall(tmp_path)
    (folder,) = {n.split("/")[0] for n in names}
    assert {n.split("/")[1] for n in names} == {"model.safetensors", "config.json", "README.md", "samples.png",
                                                "training_args.json"}
    return tmp_path / folder


def wait_for(job, predicate, what: str, timeout: float = 600):
    """Polls until predicate(job); the timeout only guards against a hang (a loaded CI machine is slow, not wrong)."""
    deadline = time.monotonic() + timeout
    while not predicate(job):
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {job.status()}"
        time.sleep(0.1)


def test_live_training_streams_queues_stops_exports_and_pushes(server, client, hub, tmp_path):
    # Visitor A trains with the whole budget; B's training waits in the queue; the other tabs answer meanwhile.
    job_a = client.submit("aae-2d-mixture", 90, 0, api_name="/train_live")
    # The curves fill from the first loss reading (every sync_every steps); updates before it show no curve yet.
    wait_for(job_a, lambda j: len(j.outputs()) >= 2 and j.outputs()[-1][0]["data"], "streamed updates with curves")
    curves, scatter, status, download = job_a.outputs()[-1]
    assert "Training **AAE, mixture prior (2-D)**" in status and download is None
    term = curves["columns"].index("term")
    assert gray(scatter).shape == (340, 300) and {"reconstruction", "adversarial"} <= {
        row[term] for row in curves["data"]}

    other = Client(server, verbose=False, httpx_kwargs={"timeout": 300})
    job_b = other.submit("vae-2d", 1, 1, api_name="/train_live")
    wait_for(job_b, lambda j: j.status().code == Status.IN_QUEUE, "B in the queue")
    assert job_b.status().rank == 0 and not job_a.done()  # B sees its place in the queue while A trains
    assert gray(client.predict("vae", 4, 1.0, 0, api_name="/sample")).shape == (248, 248)
    assert not job_a.done()  # another tab answered while the training was still running

    assert "Nothing of yours" in other.predict(api_name="/stop_live")  # B cannot stop A's run
    assert "Stopping" in client.predict(api_name="/stop_live")
    curves, scatter, status, zipped = job_a.result(timeout=120)
    assert "stopped by your Stop" in status and "Prior MMD of 1000 test codes" in status
    folder = unpack(zipped, tmp_path / "a")
    model = load_model(str(folder))
    assert model.config.prior == "mixture10" and model.config.latent_dim == 2
    command = json.loads((folder / "training_args.json").read_text())["command"]
    assert command.startswith("python -m train --model aae") and "--lr 0.001" in command and "--max-steps" in command

    *_, status_b, zipped_b = job_b.result(timeout=120)  # B ran after A: its one-second budget, to the end
    assert "stopped by time budget" in status_b and "Test NLL" in status_b
    folder_b = unpack(zipped_b, tmp_path / "b")
    assert load_model(str(folder_b)).config.model_type == "vae"
    # the recipe's learning rate for a two-player model (above), three times it for a model trained on its bound
    assert "--lr 0.003" in json.loads((folder_b / "training_args.json").read_text())["command"]

    # A pushes the result to their own namespace on the (loopback) Hub with their OAuth token.
    message = client.predict(handle_file(zipped), "my-live-aae", api_name="/push_live")
    assert "visitor/my-live-aae" in message
    files = hub.commits("visitor/my-live-aae")[-1].files
    assert files["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    assert {"config.json", "README.md", "training_args.json"} <= set(files)

    with pytest.raises(AppError, match="invalid repo name"):
        client.predict(handle_file(zipped), "no/slashes", api_name="/push_live")
    with pytest.raises(AppError, match="sign in with Hugging Face"):
        other.predict(handle_file(zipped), "my-live-aae", api_name="/push_live")  # no token: not signed in
    bad = tmp_path / "not_an_export.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("x/model.pkl", b"pickle")
    with pytest.raises(AppError, match="not an export zip"):
        client.predict(handle_file(bad), "my-live-aae", api_name="/push_live")


def test_signed_in_visitor_pushes_with_the_session_token(server, client, hub, tmp_path):
    """The LoginButton's flow (gradio mocks Hugging Face's OAuth off a Space): the session cookie set by
    /login/callback carries the token that the push uses; no oauth_token is passed by the caller."""
    import httpx

    login = httpx.get(f"{server}login/huggingface", follow_redirects=False)
    callback = httpx.get(str(httpx.URL(server).join(login.headers["location"])), follow_redirects=False)
    session = callback.cookies.get("session") or httpx.Cookies(callback.cookies).get("session")
    assert session, callback.headers
    signed_in = Client(server, verbose=False, headers={"Cookie": f"session={session}"})
    *_, zipped = client.predict("vae-2d", 1, 2, api_name="/train_live")
    message = signed_in.predict(handle_file(zipped), "from-the-login-button", api_name="/push_live")
    assert "visitor/from-the-login-button" in message
    assert "model.safetensors" in hub.commits("visitor/from-the-login-button")[-1].files
    assert any("Bearer mock-oauth-token-for-local-dev" == auth for auth in hub.authorizations)


def test_live_models_are_the_2d_checkpoints_with_their_recipes(tmp_path):
    """The tab offers what the models declare (generative checkpoints pictured in a plane: a 2-D code, or a clustering
    AAE's 2-D style) as their recipes say; it names no model itself."""
    offered = live.live_models()
    assert list(offered) == [name for name, (c, spec) in checkpoints().items()
                             if c.config.pictured_in_2d and spec.generative]
    assert {"vae-2d", "aae-2d-mixture", "aae-2d-clusters"} <= set(offered) and "aae-clusters-16" not in offered
    for name, model in offered.items():
        recipe = read_recipe(RECIPES_DIR / f"{name}.json")
        assert (model.model, model.model_config, model.batch_size) == (
            recipe["model"], recipe["model_config"], recipe["train"]["batch_size"])
        assert model.adam_beta1 == recipe["train"].get("adam_beta1", 0.9), name  # aae-2d-clusters: 0.5
        assert model.lr == recipe["train"]["lr"] * (1 if get_spec(model.model).adversarial else 3), name
    edited = tmp_path / "recipes"
    shutil.copytree(RECIPES_DIR, edited)
    (edited / "avb-2d.json").unlink()
    recipe = read_recipe(edited / "vae-2d.json")
    recipe["model_config"]["hidden_dims"] = [64]
    (edited / "vae-2d.json").write_text(json.dumps(recipe))
    changed = live.live_models(edited)
    assert "avb-2d" not in changed and changed["vae-2d"].model_config["hidden_dims"] == [64]


def test_live_training_without_mnist_says_so(tmp_path):
    empty = tmp_path / "no_mnist"
    empty.mkdir()
    assert "MNIST is not available on this server" in live.data_note(str(empty))
    with pytest.raises(Exception, match="MNIST is not available on this server"):
        next(live.LiveTraining(str(empty), tmp_path / "work").train("vae-2d", 2, 0, "visitor"))


# ------------------------------------------------------------------------------------------- browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(server)
        yield page
        browser.close()


def test_explore_tab_in_a_browser(page, tmp_path):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Explore a digit", exact=True).click()
    page.get_by_role("button", name="Run through every model", exact=True).click()
    image = page.locator("#every-vae img")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    expect(page.locator("#digit-meter").get_by_text("of the 20 test digits").first).to_be_visible()
    expect(page.locator("#digit-meter").get_by_text("S(x) = −log₂ p(x) − L(x) among test digits")).to_be_visible()
    page.get_by_role("button", name="Traverse", exact=True).click()
    expect(page.locator("#traversal-out img")).to_be_visible()
    page.screenshot(path=str(tmp_path / "explore.png"), full_page=True)
    assert Image.open(tmp_path / "explore.png").size[0] == 1400


def test_live_tab_in_a_browser(page, tmp_path):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Train one yourself", exact=True).click()
    budget = page.get_by_label("number input for Time budget (s)")
    budget.fill("1")
    budget.press("Enter")
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.locator("#live-status").get_by_text("Done")).to_be_visible(timeout=120_000)
    expect(page.locator("#live-scatter img")).to_be_visible()
    expect(page.locator("#live-curves")).to_be_visible()
    page.screenshot(path=str(tmp_path / "live.png"), full_page=True)
    with page.expect_download() as download:
        page.locator("#live-download").click()
    assert zipfile.is_zipfile(io.BytesIO(Path(download.value.path()).read_bytes()))
