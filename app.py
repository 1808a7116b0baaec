"""Start the VAE-family demo: `python app.py` (bundled weights in pretrained/, offline) or `python app.py --hub`
(pinned Hub revisions, falling back to the bundled weights when the Hub can't be reached)."""

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def main() -> None:
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
