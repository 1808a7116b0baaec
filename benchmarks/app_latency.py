"""Latency of the demo: handlers called in-process, every endpoint over HTTP through gradio_client with 1 and 16
concurrent clients, cold start of `python app.py` to its first HTTP 200 (beside the bare `import gradio, torch`
of the same machine, alternated with it, so the ratio is taken under the same load), and the server's peak memory.

    python -m benchmarks.app_latency                  # ~3 min on 2 idle cores
    python -m benchmarks.app_latency --calls 5 --concurrent-calls 1 --starts 1    # quick look
    python -m benchmarks.app_latency --mix --concurrent-calls 4     # 16 clients x 4 calls: seeded /sample, test digits
    python -m benchmarks.app_latency --mix --fresh --concurrent-calls 4   # the same calls with new seeds and uploads
    python -m benchmarks.app_latency --mix --live --concurrent-calls 4    # ... while a live training runs

Weights (`--weights auto`): pretrained/ for every checkpoint it holds, tiny random checkpoints
(demo/tiny_weights.py) for any still missing; the table says which. The server is `python app.py --weights-dir ...
--port ...` as a subprocess (its queue as demo.build_app sets it; `--concurrency-limit` overrides it through
VAE_FAMILY_CONCURRENCY), offline (HF_HUB_OFFLINE=1); the clients run in this process on the same 2 cores, so the
latencies include the client's own work (request, polling, downloading the PNGs).
Peak memory is the server process's VmHWM from /proc after all the calls.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python path/to/benchmarks/x.py), from any folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "benchmarks"

from .common import MNIST_DIR, REPO_ROOT, header, median, percentile, table, verdict

IN_PROCESS_TARGET_MS = 20.0
P50_TARGET_MS = 300.0
P95_TARGET_MS = 1000.0
FRESH_P50_TARGET_MS = 1000.0  # inputs nobody sent before: every call runs its model
COLD_START_TARGET_RATIO = 1.3  # cold start of app.py / bare `import gradio, torch`, measured alternately
CALL_TIMEOUT_S = 60.0  # a call that has not answered by then counts as an error


def weights_dir(choice: str, tmp: Path) -> tuple[Path, str]:
    """pretrained/ (all of it), tiny checkpoints, or "auto": pretrained/ where a checkpoint exists, tiny ones for
    the rest (while the bundled weights are still being trained)."""
    from demo.weights import checkpoint_names
    from demo.tiny_weights import make_tiny_weights

    bundled = REPO_ROOT / "pretrained"
    present = [n for n in checkpoint_names() if (bundled / n / "model.safetensors").is_file()]
    missing = [n for n in checkpoint_names() if n not in present]
    if choice == "pretrained" or (choice == "auto" and not missing):
        if missing:
            raise SystemExit(f"pretrained/ lacks {missing}")
        return bundled, "pretrained/ (every checkpoint)"
    if choice == "tiny":
        return make_tiny_weights(tmp / "weights"), "tiny random checkpoints (demo/tiny_weights.py)"
    folder = make_tiny_weights(tmp / "weights", skip=tuple(present))
    for name in present:
        (folder / name).symlink_to(bundled / name, target_is_directory=True)
    return folder, (f"pretrained/ for {', '.join(present)}; tiny random checkpoints (demo/tiny_weights.py) for "
                    f"{', '.join(missing)}, which were still training")


def endpoint_calls():
    """(api_name, args) for every named endpoint, with the UI's default inputs (/sample: a 64-sample grid)."""
    from demo.common import example_choices

    zero, six = example_choices()[0], example_choices()[13]
    return [
        ("/sample", ("vae", 64, 1.0, 0)),
        ("/interpolate", (None, None, zero, None, None, six, 10, "lerp")),
        ("/manifold", ("vae-2d", 15)),
        ("/cvae_samples", (3, 0, 16)),
        ("/same_style", (None, None, zero, "6")),
        ("/complete_quadrants", (None, None, zero, 2, 8, 0)),
        ("/denoise", (None, None, zero, "salt_and_pepper", 0.3, 0)),
        ("/latent_scatter", (2000, 0)),
        ("/prior_samples", (25, 0)),
        ("/prior_metrics", ()),
        ("/every_model", (None, None, six)),
        ("/traverse", (None, None, zero, "vae", 5, 9)),
    ]


# --------------------------------------------------------------------------------------------- in-process


def in_process(weights: Path, calls: int) -> list[list]:
    from demo import denoising, sampling
    from demo.common import example_choices
    from demo.weights import ModelStore

    store = ModelStore(weights, hub=False)
    zero = example_choices()[0]
    handlers = {
        "/sample handler: `sample_grid(store, 'vae', 64, 1.0, seed)`":
            lambda i: sampling.sample_grid(store, "vae", 64, 1.0, i),
        "/denoise handler: `denoise(store, None, None, digit, 'salt_and_pepper', 0.3, seed)`":
            lambda i: denoising.denoise(store, None, None, zero, "salt_and_pepper", 0.3, i),
    }
    rows = []
    for name, fn in handlers.items():
        for i in range(3):  # warm-up: first calls load the checkpoint and touch lazy imports
            fn(i)
        times = []
        for i in range(calls):
            start = time.perf_counter()
            fn(i)
            times.append((time.perf_counter() - start) * 1000)
        rows.append([name, calls, f"{median(times):.1f}", f"{percentile(times, 95):.1f}",
                     f"≤ {IN_PROCESS_TARGET_MS:.0f} ms", verdict(median(times) <= IN_PROCESS_TARGET_MS)])
    return rows


# --------------------------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bare_import_seconds() -> float:
    """Wall time of `python -c "import gradio, torch"`: the floor any gradio + torch app starts from."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "import gradio, torch"], cwd=REPO_ROOT, check=True,
                   env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1"})
    return time.monotonic() - start


def start_server(weights: Path, tmp: Path, concurrency: int | None = None, result_cache_mb: float | None = None,
                 data_dir: Path | None = None, batch_rows: int | None = None) -> tuple[subprocess.Popen, str, float]:
    """`python app.py` as a user starts it; returns (process, url, seconds to the first HTTP 200)."""
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_OFFLINE": "1", "GRADIO_TEMP_DIR": str(tmp / "gradio"),
           **({"VAE_FAMILY_CONCURRENCY": str(concurrency)} if concurrency else {}),
           **({"VAE_FAMILY_RESULT_CACHE_MB": str(result_cache_mb)} if result_cache_mb is not None else {}),
           **({"VAE_FAMILY_BATCH_ROWS": str(batch_rows)} if batch_rows is not None else {})}
    url = f"http://127.0.0.1:{port}/"
    start = time.monotonic()
    command = [sys.executable, "app.py", "--weights-dir", str(weights), "--port", str(port)]
    proc = subprocess.Popen(command + (["--data-dir", str(data_dir)] if data_dir else []),
                            cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while time.monotonic() - start < 120:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return proc, url, time.monotonic() - start
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("app.py served no page within 120 s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its threads included), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


class HttpClient:
    """What a browser's page does for one call, through Gradio's HTTP API with the standard library: POST
    /gradio_api/call/<name>, read the event stream until `complete`, then GET every output file (the images the page
    shows). Much lighter than gradio_client, whose own CPU time (on these same 2 cores) dominated the 16-client runs."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def upload(self, path: Path) -> dict:
        """POST the file to /gradio_api/upload as the page does; the FileData that names it in a call."""
        import json
        import uuid

        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{path.name}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + \
            f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(f"{self.url}/gradio_api/upload", data=body, method="POST",
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_S) as response:
            (stored,) = json.loads(response.read())
        return {"path": stored, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    def call(self, api_name: str, args: tuple) -> list:
        import json

        args = tuple(self.upload(a) if isinstance(a, Path) else a for a in args)  # a fresh upload: sent first

        request = urllib.request.Request(f"{self.url}/gradio_api/call{api_name}", method="POST",
                                         data=json.dumps({"data": list(args)}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_S) as response:
            event_id = json.loads(response.read())["event_id"]
        event, data = None, None
        with urllib.request.urlopen(f"{self.url}/gradio_api/call{api_name}/{event_id}",
                                    timeout=CALL_TIMEOUT_S) as stream:
            for raw in stream:
                line = raw.decode().strip()
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    data = json.loads(line[5:])
                    break
        if event != "complete":
            raise RuntimeError(f"{api_name}: {event}: {data}")
        for item in data:
            if isinstance(item, dict) and item.get("url"):
                with urllib.request.urlopen(item["url"], timeout=CALL_TIMEOUT_S) as response:
                    response.read()
        return data


def timed_calls(url: str, plan, clients: int, calls_each: int,
                client_kind: str = "gradio_client") -> tuple[list[float], list[str]]:
    """`clients` threads, each with its own client (gradio_client.Client, or HttpClient), start together and make
    `calls_each` calls: call j of client i is plan(i, j) = (api_name, args)."""
    from gradio_client import Client

    latencies, errors, lock = [], [], threading.Lock()
    handles = []
    for _ in range(clients):  # a busy server can time out a client's start-up too: an error, not a crash
        try:
            handles.append(HttpClient(url) if client_kind == "http" else
                           Client(url, verbose=False, httpx_kwargs={"timeout": CALL_TIMEOUT_S}))
        except Exception as exc:  # noqa: BLE001 - counted and reported
            errors += [f"client start-up: {type(exc).__name__}: {exc}"] * calls_each
    barrier = threading.Barrier(len(handles)) if handles else None

    def work(i, client):
        barrier.wait()
        for j in range(calls_each):
            api_name, args = plan(i, j)
            start = time.perf_counter()
            try:  # submit + result(timeout): a lost event must not hang the benchmark (predict waits forever)
                if isinstance(client, HttpClient):
                    client.call(api_name, args)
                else:
                    from gradio_client import handle_file

                    args = tuple(handle_file(a) if isinstance(a, Path) else a for a in args)
                    client.submit(*args, api_name=api_name).result(timeout=CALL_TIMEOUT_S)
                ms = (time.perf_counter() - start) * 1000
                with lock:
                    latencies.append(ms)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(f"{api_name}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(handles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in handles:
        c.close() if hasattr(c, "close") else None
    return latencies, errors


# The calls visitors click, as the load test of the result cache makes them: each client alternates a seeded /sample
# (the UI's defaults, seeds 0-3) and /every_model on a bundled test digit (one of the 20, by client).
def example_mix(client: int, call: int) -> tuple[str, tuple]:
    from demo.common import example_choices

    if call % 2 == 0:
        return "/sample", ("vae", 36, 1.0, (client + call // 2) % 4)
    return "/every_model", (None, None, example_choices()[client % len(example_choices())])


class FreshMix:
    """The same two calls with inputs nobody sent before: /sample with a new seed, /every_model on a fresh upload
    (a bundled test digit at a random size, mode, polarity, format and noise: benchmarks/soak.py's pictures), made
    while the call is prepared, so every call misses the cache."""

    def __init__(self, folder: Path, seed: int, sample_only: bool = False):
        import random

        self.folder, self.rng, self.lock, self.calls = folder, random.Random(seed), threading.Lock(), 0
        self.sample_only = sample_only
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, client: int, call: int) -> tuple[str, tuple]:
        from .soak import random_upload

        with self.lock:
            self.calls += 1
            if call % 2 == 0 or self.sample_only:
                return "/sample", ("vae", 36, 1.0, 10_000 + self.calls)
            return "/every_model", (None, random_upload(self.rng, self.folder), None)


def live_trainings(url: str, data_dir: Path, until: threading.Event, budget_s: int, done: list) -> threading.Thread:
    """One more visitor running the live tab's training over and over (its defaults, `budget_s` seconds, a new seed
    each run) until `until` is set; each finished run's seconds are appended to `done`."""
    from gradio_client import Client

    def loop():
        client = Client(url, verbose=False, download_files=False)
        params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/train_live"]
        values = [p.get("parameter_default") for p in params["parameters"]]
        seed = 0
        while not until.is_set():
            seed += 1
            values[1:3] = [budget_s, seed]
            start = time.perf_counter()
            client.submit(*values, api_name="/train_live").result(timeout=CALL_TIMEOUT_S + budget_s)
            done.append(time.perf_counter() - start)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def run_mix(args, weights: Path, tmp: Path) -> list[str]:
    """The example mix, twice on one fresh server: `--concurrency` clients x `--concurrent-calls` calls at once, first
    with the result cache holding only the first visit's values (cold), then once more with every input seen (warm,
    a Space after its first visitors). p50 / p95 / errors over each pass, and the server's last result-cache line."""
    proc, url, _ = start_server(weights, tmp, args.concurrency_limit, args.result_cache_mb,
                                args.data_dir if args.live else None, args.batch_rows)
    rows, all_errors, n = [], [], args.concurrency * args.concurrent_calls
    plan = FreshMix(tmp / "uploads", 0, args.sample_only) if args.fresh else example_mix
    target = FRESH_P50_TARGET_MS if args.fresh else P50_TARGET_MS
    stop_live, live_runs = threading.Event(), []
    try:
        timed_calls(url, lambda i, j: ("/prior_metrics", ()), 1, 1, args.client)  # first connection; not cached
        if args.live:
            live = live_trainings(url, args.data_dir, stop_live, args.live_budget, live_runs)
            time.sleep(args.live_budget / 3)  # the training is under way when the clients start
        for name in ("cold", "warm"):
            server_before = cpu_seconds(proc.pid)
            ms, errors = timed_calls(url, plan, args.concurrency, args.concurrent_calls, args.client)
            server_ms = (cpu_seconds(proc.pid) - server_before) / max(1, len(ms)) * 1000
            all_errors += errors
            rows.append([name, n, f"{median(ms):.0f}" if ms else "–", f"{percentile(ms, 95):.0f}" if ms else "–",
                         f"{max(ms):.0f}" if ms else "–", f"{server_ms:.0f}", f"{len(errors)} / {n}",
                         verdict(bool(ms) and not errors and median(ms) <= target)])
            print(f"{name}: {rows[-1]}", file=sys.stderr, flush=True)
        if args.live:
            stop_live.set()
            live.join(CALL_TIMEOUT_S + args.live_budget)
    finally:
        stop(proc)
    lines = proc.stderr.read().splitlines()
    log = [line for line in lines if line.startswith("result cache:")]
    batching = [line for line in lines if line.startswith("decode batching:")]
    inputs = ("fresh inputs: only `/sample`, each with a seed nobody used before" if args.fresh and args.sample_only
              else "fresh inputs: `/sample` with seeds nobody used before, `/every_model` on a fresh upload each"
              if args.fresh else "alternating seeded `/sample` (36 samples, seeds 0-3) and `/every_model` (a bundled "
              "test digit)")
    live_note = (f"; while one more visitor ran the live training over and over ({args.live_budget} s runs, "
                 f"{len(live_runs)} finished)" if args.live else "")
    return [f"#### {'Fresh inputs' if args.fresh else 'Example mix'}: {args.concurrency} clients ({args.client}) × "
            f"{args.concurrent_calls} calls at once, {inputs}, two passes on one server{live_note}; result cache "
            f"{'off' if args.result_cache_mb == 0 else 'on'}; decode batching "
            f"{'off' if args.batch_rows == 0 else 'on'}; queue concurrency "
            f"{args.concurrency_limit or 'the app default'}; target p50 ≤ "
            f"{FRESH_P50_TARGET_MS if args.fresh else P50_TARGET_MS:.0f} ms", "",
            table(["pass", "calls", "p50 ms", "p95 ms", "max ms", "server CPU ms / call", "errors", ""], rows), "",
            f"Server log at the end: `{log[-1] if log else 'no result-cache line'}`; "
            f"`{batching[-1] if batching else 'no batching line'}`", "",
            *(["Errors:", "", *[f"- {e}" for e in all_errors[:20]], ""] if all_errors else [])]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", choices=["auto", "pretrained", "tiny"], default="auto")
    p.add_argument("--in-process-calls", type=int, default=100)
    p.add_argument("--calls", type=int, default=20, help="sequential calls per endpoint with 1 client")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--concurrent-calls", type=int, default=3, help="calls per client with --concurrency clients")
    p.add_argument("--starts", type=int, default=3, help="cold starts of app.py (each after a bare import)")
    p.add_argument("--concurrency-limit", type=int, help="the server's queue concurrency (default: the app's)")
    p.add_argument("--endpoints", nargs="*", help="only these endpoints (e.g. /sample /denoise)")
    p.add_argument("--client", choices=["gradio_client", "http"], default="gradio_client",
                   help="gradio_client (as before), or plain HTTP calls as a browser page makes them (lighter)")
    p.add_argument("--mix", action="store_true",
                   help="only the example mix (--concurrency clients x --concurrent-calls calls alternating seeded "
                        "/sample and /every_model on a test digit), on a fresh server")
    p.add_argument("--result-cache-mb", type=float, help="the server's result cache in MB (0: off; default: the app's)")
    p.add_argument("--batch-rows", type=int, help="the server's decode batching, rows per pass (0: off; default: "
                                                  "the app's)")
    p.add_argument("--fresh", action="store_true", help="with --mix: inputs nobody sent before (new seeds, uploads)")
    p.add_argument("--sample-only", action="store_true", help="with --fresh: only /sample calls (what batching "
                                                                "shares)")
    p.add_argument("--live", action="store_true", help="with --mix: one more visitor runs live trainings meanwhile")
    p.add_argument("--live-budget", type=int, default=30, help="seconds per live training with --live")
    p.add_argument("--data-dir", type=Path, default=MNIST_DIR, help="MNIST for the live training (--live)")
    args = p.parse_args(argv)
    if args.mix:
        with tempfile.TemporaryDirectory() as tmp_name:
            weights, weights_note = weights_dir(args.weights, Path(tmp_name))
            print("\n".join([header("Demo latency: example mix"), f"Weights: {weights_note}.", "",
                             *run_mix(args, weights, Path(tmp_name))]), flush=True)
        return

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        weights, weights_note = weights_dir(args.weights, tmp)
        out = [header("Demo latency"), f"Weights: {weights_note}.", ""]

        starts, bare = [], []
        for _ in range(args.starts):  # alternate, so both see the same load
            bare.append(bare_import_seconds())
            proc, url, seconds = start_server(weights, tmp, args.concurrency_limit)
            starts.append(seconds)
            stop(proc)
        ratios = [s / b for s, b in zip(starts, bare)]
        print(f"cold starts: {starts}; bare imports: {bare}", file=sys.stderr, flush=True)

        rows = in_process(weights, args.in_process_calls)
        out += [f"#### In-process handler calls (median of {args.in_process_calls} calls after 3 warm-up calls)", "",
                table(["handler", "calls", "median ms", "p95 ms", "target", ""], rows), ""]

        proc, url, seconds = start_server(weights, tmp, args.concurrency_limit)
        try:
            rows = []
            all_errors = []
            calls = [c for c in endpoint_calls() if not args.endpoints or c[0] in args.endpoints]
            for api_name, call_args in calls:
                plan = lambda i, j, call=(api_name, call_args): call  # noqa: E731 - the same call every time
                timed_calls(url, plan, 1, 2, args.client)  # warm-up
                single, e1 = timed_calls(url, plan, 1, args.calls, args.client)
                server_before, client_before = cpu_seconds(proc.pid), time.process_time()
                many, e16 = timed_calls(url, plan, args.concurrency, args.concurrent_calls, args.client)
                n_calls = max(1, len(many))
                server_ms = (cpu_seconds(proc.pid) - server_before) / n_calls * 1000
                client_ms = (time.process_time() - client_before) / n_calls * 1000
                errors = e1 + e16
                all_errors += [f"{api_name}: {e}" for e in errors]
                ok = not errors and single and many and median(single) <= P50_TARGET_MS and \
                    median(many) <= P50_TARGET_MS and percentile(many, 95) <= P95_TARGET_MS
                rows.append([f"`{api_name}`", f"{median(single):.0f}" if single else "–",
                             f"{percentile(single, 95):.0f}" if single else "–",
                             f"{median(many):.0f}" if many else "–", f"{percentile(many, 95):.0f}" if many else "–",
                             f"{server_ms:.0f}", f"{client_ms:.0f}",
                             f"{len(errors)} / {args.calls + args.concurrency * args.concurrent_calls}",
                             verdict(bool(ok))])
                print(f"{api_name}: 1 client p50 {median(single) if single else float('nan'):.0f} ms, "
                      f"{args.concurrency} clients p50 {median(many) if many else float('nan'):.0f} ms, "
                      f"{len(errors)} errors", file=sys.stderr, flush=True)
            peak = peak_rss_mb(proc.pid)
        finally:
            stop(proc)
        out += [f"#### Over HTTP ({args.client}), per endpoint: {args.calls} sequential calls from 1 client, then "
                f"{args.concurrency} clients × {args.concurrent_calls} calls at once; target p50 ≤ "
                f"{P50_TARGET_MS:.0f} ms in both, p95 ≤ {P95_TARGET_MS:.0f} ms with {args.concurrency} clients, "
                f"no errors; queue concurrency {args.concurrency_limit or 'the app default'}", "",
                table(["endpoint", "1 client p50 ms", "1 client p95 ms", f"{args.concurrency} clients p50 ms",
                       f"{args.concurrency} clients p95 ms", "server CPU ms / call", "client CPU ms / call",
                       "errors", ""], rows), "",
                "CPU per call (server process, and these client threads) is taken over the concurrent phase: with "
                f"{os.cpu_count()} cores, {args.concurrency} clients in flight cannot wait less than about "
                f"(server + client CPU per call) × {args.concurrency} / {os.cpu_count()} on an otherwise idle "
                "machine, whatever the queue settings.", ""]
        if all_errors:
            out += ["Errors:", "", *[f"- {e}" for e in all_errors[:20]], ""]
        out += ["#### Start-up and memory", "",
                table(["measure", "value", "target", ""], [
                    [f"cold start of `python app.py` to first HTTP 200 ({len(starts)} starts)",
                     " / ".join(f"{s:.1f} s" for s in starts), "", ""],
                    ["bare `python -c 'import gradio, torch'`, alternated with the starts",
                     " / ".join(f"{b:.1f} s" for b in bare), "", ""],
                    ["cold start / bare import", " / ".join(f"{r:.2f}×" for r in ratios),
                     f"≤ {COLD_START_TARGET_RATIO}× (median)", verdict(median(ratios) <= COLD_START_TARGET_RATIO)],
                    ["server peak RSS (VmHWM) after all the calls above", f"{peak:.0f} MB", "", ""],
                ]), ""]
        print("\n".join(out), flush=True)


if __name__ == "__main__":
    main()
