"""The Space's own constraints (README front matter, requirements, app.py's Space defaults) that can be checked here;
the Space's behaviour end to end (its files only, SPACE_ID, Hub mode, 0.0.0.0) is tests/test_publish.py."""

import importlib.metadata
import importlib.util
import re
import sys
from pathlib import Path

from huggingface_hub import SpaceCard
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_app_module():
    spec = importlib.util.spec_from_file_location("space_app", REPO_ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_front_matter_matches_the_pinned_requirements_and_this_python():
    card = SpaceCard.load(REPO_ROOT / "README.md")
    pins = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.txt must pin every package exactly (a Space resolves anew): {line!r}"
            pins[name.lower().replace("_", "-")] = version
    assert card.data.sdk == "gradio" and card.data.sdk_version == pins["gradio"]
    assert card.data.app_file == "app.py"
    # this environment is the Space's: same Python minor version, and every pin installed at exactly its version
    assert card.data.python_version == f"{sys.version_info.major}.{sys.version_info.minor}"
    for name, version in pins.items():  # public version: the CPU build of torch is "2.13.0+cpu"
        assert Version(importlib.metadata.version(name)).public == version, name
    assert not re.search(r"^torch\b(?!==)", (REPO_ROOT / "requirements.txt").read_text(), re.M)


def test_space_defaults_bind_all_interfaces_and_keep_the_hf_cache_on_the_persistent_disk(tmp_path):
    app = load_app_module()
    assert app.space_settings({}, tmp_path) == {}  # not on a Space: 127.0.0.1 and the user's own cache
    assert app.space_settings({"SPACE_ID": "org/space"}, tmp_path / "absent") == {"host": "0.0.0.0"}
    assert app.space_settings({"SPACE_ID": "org/space"}, tmp_path) == {
        "host": "0.0.0.0", "HF_HOME": str(tmp_path / ".huggingface")}
    assert app.space_settings({"SPACE_ID": "org/space", "HF_HOME": "/mine"}, tmp_path) == {"host": "0.0.0.0"}
