"""(Re)write the model card of an existing export and push it: `python -m train.push DIR --repo-id ORG/NAME`.

Use after `python -m train.evaluate` has added eval_results.json to an export, so the card gains its model-index.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .card import CardError, write_card
from .hub import PushError, push_folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.push", description=__doc__.splitlines()[0])
    p.add_argument("folder", help="an export folder written by `python -m train --save-pretrained`")
    p.add_argument("--repo-id", required=True, metavar="ORG/NAME")
    p.add_argument("--revision", help="branch to push to (created if missing); default main")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--no-card", action="store_true", help="push README.md as it is")
    p.add_argument("--card-only", action="store_true",
                   help="only (re)write the card, e.g. for the bundled pretrained/ folders; push nothing")
    args = p.parse_args(argv)
    if args.no_card and args.card_only:
        p.error("--no-card and --card-only exclude each other")
    try:
        if not args.no_card:
            write_card(Path(args.folder), repo_id=args.repo_id)
        if args.card_only:
            print(f"wrote {Path(args.folder) / 'README.md'}")
            return 0
        url = push_folder(args.folder, args.repo_id, revision=args.revision, private=args.private)
    except (CardError, PushError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"pushed {args.folder} to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
