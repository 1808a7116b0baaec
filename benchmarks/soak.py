"""Soak test of the served app: many clients making mixed calls for minutes, while the server's temp folder and
memory are sampled. It shows that neither grows without bound (uploads and results are deleted on delete_cache's
schedule, demo/serving.py) and that nothing fails under a long mixed load.

    python -m benchmarks.soak                             # 16 clients for 7 minutes, cleanup every 15 s, age 60 s
    python -m benchmarks.soak --duration 60 --clients 4   # quick look

Method. The server is `python app.py` as a Space runs it (its launch settings: upload limit, delete_cache), started
as a subprocess with its own GRADIO_TEMP_DIR and `VAE_FAMILY_DELETE_CACHE=<frequency>,<age>` shortened so that
several cleanup cycles fit in the run (the production default is 300 s / 3600 s: the same mechanism, a larger
plateau). `--clients` threads, each with its own gradio_client.Client, call endpoints chosen at random with random
seeds, sizes and models; every call that takes a digit uploads a fresh picture (a bundled test digit at a random
size, colour mode, polarity and format, with noise, so no two uploads are the same file). Every other named
endpoint the app has is called with its defaults, and a live-training endpoint (`/train_live`), if the app has
one, is run over and over by one extra client with a short budget. Every `--sample-every` seconds the sampler
records the temp folder's disk usage (blocks of files and folders), its files and folders, the disk usage of the
server's own TMPDIR (where the live-training tab keeps its exports), and the server's RSS (VmRSS). "Flat" is
judged after the warm-up (the first age + 2 × frequency seconds, while the folder fills to its plateau): the
least-squares slope over the rest of the run, and the last third's mean against the middle third's. A call that
raises or does not answer within --timeout seconds is an error.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .app_latency import free_port, stop, weights_dir
from .common import REPO_ROOT, MNIST_DIR, header, percentile, table

HERE = Path(__file__).resolve().parent
SKIP = {"/stop_live", "/push_live"}  # stopping others' training and pushing to the Hub are not load
LIVE = "/train_live"


def start_app(weights: Path, temp: Path, delete_cache: str, data_dir: Path | None):
    import subprocess
    import urllib.request

    port = free_port()
    # TMPDIR: whatever the server writes to the system temp folder (the live-training exports) is measured too
    (temp.parent / "system_tmp").mkdir(exist_ok=True)
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1",
           "GRADIO_TEMP_DIR": str(temp), "VAE_FAMILY_DELETE_CACHE": delete_cache,
           "TMPDIR": str(temp.parent / "system_tmp")}
    command = [sys.executable, "app.py", "--weights-dir", str(weights), "--port", str(port)]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    log = open(temp.parent / "server.log", "w")  # noqa: SIM115 - the server writes to it until it stops
    proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.close()
            raise RuntimeError(f"app.py exited with {proc.returncode}: {Path(log.name).read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError("app.py served no page within 180 s")


# ------------------------------------------------------------------------------------------------- the calls


def random_upload(rng: random.Random, folder: Path) -> Path:
    """A fresh picture of a bundled test digit: random size (28-600 px), mode, polarity, format and noise."""
    from PIL import Image

    from demo.common import test_digits

    images, _ = test_digits()
    digit = (images[rng.randrange(len(images)), 0].numpy() * 255).astype(np.float32)
    if rng.random() < 0.5:
        digit = 255 - digit  # dark ink on paper, as a photo or a scan
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, rng.uniform(0, 25), digit.shape)
    picture = Image.fromarray(np.clip(digit + noise, 0, 255).astype(np.uint8))
    side = rng.randint(28, 600)
    picture = picture.resize((side, int(side * rng.uniform(0.8, 1.25))), Image.BILINEAR)
    picture = picture.convert(rng.choice(["L", "RGB", "RGBA"]))
    fmt = rng.choice(["png", "jpeg", "webp"]) if picture.mode != "RGBA" else "png"
    path = folder / f"digit_{rng.randrange(10**9)}.{fmt}"
    picture.save(path, fmt.upper())
    return path


def digit_args(rng: random.Random, folder: Path, choices: list[str]) -> tuple[tuple, list[Path]]:
    """(sketch, upload, example): half the time a fresh upload, else a bundled test digit."""
    from gradio_client import handle_file

    if rng.random() < 0.5:
        path = random_upload(rng, folder)
        return (None, handle_file(path), None), [path]
    return (None, None, rng.choice(choices)), []


def known_calls(rng: random.Random, folder: Path, choices: list[str]) -> dict:
    """api_name -> () -> (args, files to delete afterwards), for the endpoints this script knows (README's table)."""
    seed = lambda: rng.randrange(10**6)  # noqa: E731

    def with_digits(n_digits: int, rest):
        def make():
            args, files = (), []
            for _ in range(n_digits):
                a, f = digit_args(rng, folder, choices)
                args, files = args + a, files + f
            return args + rest(), files
        return make

    return {
        "/sample": lambda: ((rng.choice(["ae", "vae", "dvae", "avb", "aae"]), rng.randint(1, 64),
                             round(rng.uniform(0.5, 1.5), 2), seed()), []),
        "/interpolate": with_digits(2, lambda: (rng.randint(2, 16), rng.choice(["lerp", "slerp"]))),
        "/manifold": lambda: ((rng.choice(["vae-2d", "aae-2d-gaussian", "aae-2d-mixture", "avb-2d"]),
                               rng.randint(3, 20)), []),
        "/cvae_samples": lambda: ((rng.randint(0, 9), seed(), rng.randint(1, 32)), []),
        "/same_style": with_digits(1, lambda: (rng.choice(["predicted by the classifier", *"0123456789"]),)),
        "/complete_quadrants": with_digits(1, lambda: (rng.randint(1, 3), rng.randint(1, 16), seed())),
        "/denoise": with_digits(1, lambda: (rng.choice(["salt_and_pepper", "gaussian", "block"]),
                                            round(rng.uniform(0, 1), 2), seed())),
        "/latent_scatter": lambda: ((rng.randint(10, 1000), seed()), []),
        "/prior_samples": lambda: ((rng.randint(1, 36), seed()), []),
        "/prior_metrics": lambda: ((), []),
        "/every_model": with_digits(1, lambda: ()),
        "/traverse": with_digits(1, lambda: (rng.choice(["vae", "cvae"]), rng.randint(1, 10), rng.randint(3, 15))),
    }


def default_calls(api: dict, known: dict) -> tuple[dict, list[str]]:
    """Calls with their defaults for the named endpoints this script does not know (other tabs); those with a
    parameter that has no default are listed as not exercised."""
    calls, skipped = {}, []
    for name, info in api["named_endpoints"].items():
        if name in known or name in SKIP or name == LIVE:
            continue
        params = info["parameters"]
        if all(p.get("parameter_has_default") for p in params):
            values = tuple(p.get("parameter_default") for p in params)
            calls[name] = lambda values=values: (values, [])
        else:
            skipped.append(name)
    return calls, skipped


class Log:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {}
        self.errors: dict[str, list[str]] = {}

    def add(self, name: str, ms: float | None, error: str | None = None) -> None:
        with self.lock:
            self.latency.setdefault(name, [])
            self.errors.setdefault(name, [])
            if error is None:
                self.latency[name].append(ms)
            else:
                self.errors[name].append(error)

    def totals(self) -> tuple[int, int]:
        with self.lock:
            return sum(map(len, self.latency.values())), sum(map(len, self.errors.values()))


def client_loop(url: str, calls: dict, log: Log, stop_at: float, seed: int, folder: Path, timeout: float) -> None:
    from gradio_client import Client

    rng = random.Random(seed)
    client = Client(url, verbose=False, download_files=str(folder / "downloads"),
                    httpx_kwargs={"timeout": timeout})
    names = sorted(calls)
    while time.monotonic() < stop_at:
        name = rng.choice(names)
        args, files = calls[name]()
        start = time.perf_counter()
        try:  # submit + result(timeout): a lost event must not hang the run
            client.submit(*args, api_name=name).result(timeout=timeout)
            log.add(name, (time.perf_counter() - start) * 1000)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            log.add(name, None, f"{type(exc).__name__}: {str(exc)[:300]}")
        for path in files:
            path.unlink(missing_ok=True)
        for downloaded in (folder / "downloads").rglob("*"):  # the client's copies: not what is measured
            if downloaded.is_file():
                downloaded.unlink(missing_ok=True)


def live_loop(url: str, log: Log, stop_at: float, folder: Path, budget_s: int, timeout: float) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=str(folder / "downloads-live"))
    params = client.view_api(print_info=False, return_format="dict")["named_endpoints"][LIVE]["parameters"]
    args = [p.get("parameter_default") for p in params]  # the tab's defaults (model, budget, seed) ...
    seed = 0
    while time.monotonic() + budget_s + 30 < stop_at:
        seed += 1
        args[1:3] = [budget_s, seed]  # ... with a short budget and a new seed each run
        start = time.perf_counter()
        try:
            client.submit(*args, api_name=LIVE).result(timeout=timeout + budget_s)
            log.add(LIVE, (time.perf_counter() - start) * 1000)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            log.add(LIVE, None, f"{type(exc).__name__}: {str(exc)[:300]}")


# ------------------------------------------------------------------------------------------------- sampling


def disk_usage(folder: Path) -> tuple[int, int, int]:
    """(bytes on disk of everything under folder, files, folders), as `du` counts: allocated blocks."""
    used, files, folders = 0, 0, 0
    for root, dirs, names in os.walk(folder):
        folders, files = folders + len(dirs), files + len(names)
        for name in dirs + names:
            try:
                used += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:  # the app's cleanup removed it between listing and stat
                pass
    return used, files, folders


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def sampler(pid: int, temp: Path, log: Log, start: float, stop_event: threading.Event, every: float,
            samples: list) -> None:
    while not stop_event.wait(every if samples else 0):
        used, files, folders = disk_usage(temp)
        calls, errors = log.totals()
        samples.append({"t": time.monotonic() - start, "temp_mb": used / 2**20, "files": files, "folders": folders,
                        "rss_mb": rss_mb(pid), "calls": calls, "errors": errors, "load": os.getloadavg()[0],
                        "tmpdir_mb": disk_usage(temp.parent / "system_tmp")[0] / 2**20})


def slope_per_min(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return float("nan")
    ts, vs = zip(*points)
    return statistics.linear_regression(ts, vs).slope * 60


def plot(samples: list[dict], warmup: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] / 60 for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    axes[0].plot(t, [s["temp_mb"] for s in samples], color="tab:blue")
    axes[0].set_ylabel("temp folder (MB on disk)")
    axes[1].plot(t, [s["rss_mb"] for s in samples], color="tab:red")
    axes[1].set_ylabel("server RSS (MB)")
    axes[2].plot(t, [s["calls"] for s in samples], color="tab:green", label="calls answered")
    axes[2].plot(t, [s["errors"] for s in samples], color="black", label="errors")
    axes[2].set_ylabel("calls (cumulative)")
    axes[2].set_xlabel("minutes since the clients started")
    axes[2].legend(loc="upper left")
    for ax in axes:
        ax.axvline(warmup / 60, color="gray", linestyle="--", linewidth=1)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", choices=["auto", "pretrained", "tiny"], default="auto")
    p.add_argument("--duration", type=float, default=420, help="seconds of load")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--delete-cache", default="15,60", help="FREQUENCY,AGE in seconds for the server")
    p.add_argument("--sample-every", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before a call counts as an error")
    p.add_argument("--live-budget", type=int, default=10, help="seconds per live-training run, if the app has one")
    p.add_argument("--plot", type=Path, default=HERE / "soak.png")
    args = p.parse_args(argv)
    frequency, age = (int(v) for v in args.delete_cache.split(","))

    from gradio_client import Client

    from demo.common import example_choices

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        weights, weights_note = weights_dir(args.weights, tmp)
        temp = tmp / "gradio"
        data_dir = MNIST_DIR if MNIST_DIR.is_dir() else None  # the real test set for the latent scatters
        head = header("Soak: mixed load on the served app")
        proc, url = start_app(weights, temp, args.delete_cache, data_dir)
        try:
            api = Client(url, verbose=False, download_files=False).view_api(print_info=False, return_format="dict")
            rng = random.Random(0)
            known = {name: make for name, make in known_calls(rng, tmp, example_choices()).items()
                     if name in api["named_endpoints"]}
            others, skipped = default_calls(api, known)
            calls = {**known, **others}
            has_live = LIVE in api["named_endpoints"]
            print(f"endpoints: {sorted(calls)}; live training: {has_live}; not exercised: {skipped}",
                  file=sys.stderr, flush=True)

            log, samples, stop_event = Log(), [], threading.Event()
            start = time.monotonic()
            stop_at = start + args.duration
            sampling = threading.Thread(target=sampler, args=(proc.pid, temp, log, start, stop_event,
                                                              args.sample_every, samples), daemon=True)
            sampling.start()
            workers = []
            for i in range(args.clients):
                folder = tmp / f"client{i}"
                folder.mkdir()
                # each client its own generator of arguments (random.Random is not shared between threads)
                own = {name: make for name, make in known_calls(random.Random(i + 1), folder,
                                                                 example_choices()).items() if name in known}
                workers.append(threading.Thread(target=client_loop, args=(url, {**own, **others}, log, stop_at,
                                                                          1000 + i, folder, args.timeout)))
            if has_live:
                (tmp / "live").mkdir()
                workers.append(threading.Thread(target=live_loop, args=(url, log, stop_at, tmp / "live",
                                                                        args.live_budget, args.timeout)))
            for w in workers:
                w.start()
            next_report = start + 60
            while any(w.is_alive() for w in workers):
                time.sleep(1)
                if time.monotonic() > next_report and samples:
                    s = samples[-1]
                    print(f"{s['t']:.0f} s: {s['calls']} calls, {s['errors']} errors, temp {s['temp_mb']:.1f} MB "
                          f"({s['files']} files), RSS {s['rss_mb']:.0f} MB, load {s['load']:.1f}",
                          file=sys.stderr, flush=True)
                    next_report += 60
            elapsed = time.monotonic() - start
            stop_event.set()
            sampling.join()
            used, files, folders = disk_usage(temp)
            samples.append({"t": time.monotonic() - start, "temp_mb": used / 2**20, "files": files,
                            "folders": folders, "rss_mb": rss_mb(proc.pid), **dict(zip(("calls", "errors"),
                                                                                        log.totals())),
                            "load": os.getloadavg()[0],
                            "tmpdir_mb": disk_usage(tmp / "system_tmp")[0] / 2**20})
        finally:
            stop(proc)
        # the server's own errors, including those of background tasks (printed when they are stopped)
        server_log = (tmp / "server.log").read_text()
        tracebacks = server_log.count("Traceback (most recent call last)")
        if tracebacks:
            print(server_log[server_log.rindex("Traceback (most recent call last)"):][:3000], file=sys.stderr)

    warmup = age + 2 * frequency
    steady = [s for s in samples if s["t"] >= warmup]
    third = max(1, len(steady) // 3)
    middle, last = steady[third:2 * third] or steady, steady[-third:]
    mean = lambda rows, key: statistics.fmean(r[key] for r in rows)  # noqa: E731
    total_calls, total_errors = log.totals()
    loads = [s["load"] for s in samples]

    out = [head,
           f"Weights: {weights_note}. Server: `python app.py` with `VAE_FAMILY_DELETE_CACHE={args.delete_cache}` "
           f"(frequency {frequency} s, age {age} s), queue concurrency 2. Clients: {args.clients} gradio_client "
           f"threads for {elapsed:.0f} s{' + 1 live-training client' if has_live else ''}, on the same machine"
           f"{''.join(f'; {k}={v}' for k, v in os.environ.items() if k.startswith('MALLOC_'))}. "
           f"1-min load average during the run: {min(loads):.1f}–{max(loads):.1f}.", "",
           f"**{total_calls + total_errors} calls, {total_errors} errors** "
           f"({(total_calls + total_errors) / elapsed:.1f} calls/s); tracebacks in the server's log: {tracebacks}.", ""]
    rows = []
    for name in sorted(set(log.latency) | set(log.errors)):
        ok = log.latency.get(name, [])
        rows.append([f"`{name}`", len(ok) + len(log.errors.get(name, [])), len(log.errors.get(name, [])),
                     f"{statistics.median(ok):.0f}" if ok else "–", f"{percentile(ok, 95):.0f}" if ok else "–"])
    out += [table(["endpoint", "calls", "errors", "p50 ms", "p95 ms"], rows), ""]
    if skipped:
        out += [f"Not exercised (a parameter without a default): {', '.join(skipped)}.", ""]
    if SKIP & set(api["named_endpoints"]):
        out += [f"Not called on purpose (not load): {', '.join(sorted(SKIP & set(api['named_endpoints'])))}.", ""]
    errors = [f"{name}: {e}" for name, es in log.errors.items() for e in es]
    if errors:
        out += ["Errors (first 10):", "", *[f"- {e}" for e in errors[:10]], ""]
    out += [f"#### Over time (warm-up: the first {warmup} s, age + 2 × frequency)", "",
            table(["after", "calls", "errors", "temp folder MB", "files", "folders", "server's TMPDIR MB",
                   "server RSS MB"],
                  [[f"{s['t']:.0f} s", s["calls"], s["errors"], f"{s['temp_mb']:.1f}", s["files"], s["folders"],
                    f"{s['tmpdir_mb']:.1f}", f"{s['rss_mb']:.0f}"]
                   for s in samples[::max(1, round(30 / args.sample_every))]]), "",
            "#### Flat after warm-up?", "",
            table(["measure", "middle third mean", "last third mean", "max after warm-up",
                   "slope after warm-up"],
                  [["temp folder (MB on disk)", f"{mean(middle, 'temp_mb'):.1f}", f"{mean(last, 'temp_mb'):.1f}",
                    f"{max(s['temp_mb'] for s in steady):.1f}",
                    f"{slope_per_min([(s['t'], s['temp_mb']) for s in steady]):+.2f} MB/min"],
                   ["server RSS (MB)", f"{mean(middle, 'rss_mb'):.0f}", f"{mean(last, 'rss_mb'):.0f}",
                    f"{max(s['rss_mb'] for s in steady):.0f}",
                    f"{slope_per_min([(s['t'], s['rss_mb']) for s in steady]):+.2f} MB/min"],
                   ["files in the temp folder", f"{mean(middle, 'files'):.0f}", f"{mean(last, 'files'):.0f}",
                    f"{max(s['files'] for s in steady)}",
                    f"{slope_per_min([(s['t'], s['files']) for s in steady]):+.1f} /min"]]), ""]
    if args.plot:
        plot(samples, warmup, args.plot, f"{args.clients} clients, delete_cache=({frequency} s, {age} s): "
                                         f"{total_calls + total_errors} calls, {total_errors} errors")
        out += [f"Plot: `{args.plot.relative_to(REPO_ROOT) if args.plot.is_relative_to(REPO_ROOT) else args.plot}`",
                ""]
    print("\n".join(out), flush=True)


if __name__ == "__main__":
    main()
