"""Command-line options generated from a settings dataclass (TrainConfig, EvalSettings): each option's name (the
field's, "-" for "_"), default, choices and help (the field's comment) come from the class, so a setting is declared
once."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import shlex
import sys
import typing


def choice(default, choices: tuple, **kw):
    """A dataclass field whose value must be one of `choices` (None allowed when it is the default)."""
    return dataclasses.field(default=default, metadata={"choices": choices, **kw})


def flag(name: str) -> str:
    """The command-line option of the field `name`: --ais-steps for ais_steps."""
    return "--" + name.replace("_", "-")


def field_help(cls) -> dict[str, str]:
    """Each field's comment (with its continuation lines), read from the dataclass's source."""
    helps, current = {}, None
    for line in inspect.getsource(cls).splitlines():
        declared = re.match(r"\s{4}(\w+): [^#]*#\s?(.*)$", line)
        continued = re.match(r"\s{4}#\s+(.*)$", line)
        if declared:
            current = declared.group(1)
            helps[current] = declared.group(2).strip()
        elif continued and current:
            helps[current] += " " + continued.group(1).strip()
        else:
            current = None
    return helps


def _parse_type(annotation: str):
    """The argparse type of a field annotated e.g. `int`, `float | None`, `str | None`."""
    base = annotation.replace(" | None", "")
    return {"int": int, "float": float, "str": str}.get(base)


def add_field_options(parser, cls, names) -> None:
    """One option per field of `cls` named in `names` on `parser` (a parser or an argument group): booleans as
    --x / --no-x, the others typed by their annotation; a field without a default defaults to None."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    helps, hints = field_help(cls), typing.get_type_hints(cls)
    for name in names:
        f = fields[name]
        default = f.default if f.default is not dataclasses.MISSING else None
        text = helps.get(name, "")
        if hints[name] is bool:
            parser.add_argument(flag(name), action=argparse.BooleanOptionalAction, default=default, help=text)
            continue
        parser.add_argument(flag(name), type=_parse_type(str(f.type)), default=default,
                            choices=f.metadata.get("choices"),
                            help=f"{text} (default: {default})" if default is not None else text)


def add_data_options(parser) -> None:
    """--data-dir and --data-source, whose defaults come from the environment ($VAE_FAMILY_DATA_DIR, ...)."""
    from vae_models.data import environment_options

    env = environment_options()
    parser.add_argument("--data-dir", default=env["data_dir"], help="folder with the MNIST IDX files (default: "
                        "$VAE_FAMILY_DATA_DIR, else the download cache)")
    parser.add_argument("--data-source", default=env["source"], choices=["idx", "hub"],
                        help="idx: IDX files (--data-dir or the download cache); hub: the Hub's parquet dataset repo")


def invocation(module: str, argv: list[str] | None) -> str:
    """The command a record names as the one that wrote it: `python -m module` with `argv` (sys.argv's when None)."""
    return shlex.join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])
