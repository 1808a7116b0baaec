"""Start the VAE-family demo: `python app.py` (bundled weights in pretrained/, offline) or `python app.py --hub`
(pinned Hub revisions, falling back to the bundled weights when the Hub can't be reached)."""

import argparse
import ctypes
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

M_ARENA_MAX = -8  # glibc's mallopt parameter, malloc.h


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """What MALLOC_ARENA_MAX=2 does, for a server started without it: glibc gives threads that contend for malloc
    arenas of their own (up to 8 per core) and seldom returns their freed pages, so with gradio's worker threads the
    RSS kept rising to ~840 MB in the soak benchmark; with 2 arenas it levelled off at ~610 MB (benchmarks/README.md).
    Called before any thread starts. An operator's own MALLOC_ARENA_MAX wins; elsewhere than glibc it does nothing."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, arenas) == 1
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False


def main() -> None:
    limit_malloc_arenas()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hub", action="store_true", default=None,
                        help="download the models from the Hub (also VAE_FAMILY_HUB=1; the default on a Space)")
    parser.add_argument("--weights-dir", default=None, help="bundled checkpoints (default: pretrained/)")
    parser.add_argument("--data-dir", default=None, help="MNIST folder for the latent scatters (optional)")
    parser.add_argument("--host", default=None, help="address to serve on (default 127.0.0.1; 0.0.0.0 on a Space)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860 or GRADIO_SERVER_PORT)")
    args = parser.parse_args()

    from demo import build_app, launch_settings

    app = build_app(weights_dir=args.weights_dir, hub=args.hub, data_dir=args.data_dir)
    # launch_settings: the upload limit (demo/serving.py; README "Serving it publicly")
    app.queue(default_concurrency_limit=2).launch(server_name=args.host, server_port=args.port, **launch_settings())


if __name__ == "__main__":
    main()
