"""Serving the app to the public (a Hugging Face Space): what it refuses, what it writes, and when that is deleted.

- **Uploads** larger than UPLOAD_LIMIT_BYTES are refused by gradio itself (`launch(max_file_size=...)`): the page
  refuses to send them ("File(s) exceed the maximum allowed size of 25.0 Mb: ..."), gradio_client too, and the
  upload route stops reading a bigger request body at the limit and answers HTTP 413, deleting the part it had
  written, so nothing is left in the temp folder. The limit is `vae_models.preprocess.MAX_FILE_BYTES`, the size
  `to_mnist` refuses to open: one constant, so what gradio accepts the library also reads.
- **Temp files** (uploads and generated images) live in gradio's temp folder, `$GRADIO_TEMP_DIR` or else
  `<system temp>/gradio` (`/tmp/gradio` on a Space: its ephemeral disk, the right place for files nobody needs
  after a restart). `Blocks(delete_cache=(frequency, age))` deletes every `frequency` seconds the files this app
  created more than `age` seconds ago (and all of them when the server stops), with `delete_old_files` in place of
  gradio's own pass, which stops for good under concurrent load; it also removes the empty folders and files
  gradio leaves behind. The default keeps a visitor's results for an hour.
  `VAE_FAMILY_DELETE_CACHE="FREQUENCY,AGE"` (seconds) changes it; `VAE_FAMILY_DELETE_CACHE=off` keeps every file.

    app = build_app(...)                     # gr.Blocks(delete_cache=delete_cache()), install_cleanup()
    app.launch(**launch_settings())          # max_file_size
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from vae_models.preprocess import MAX_FILE_BYTES

UPLOAD_LIMIT_BYTES = MAX_FILE_BYTES  # one limit for gradio's upload route and for to_mnist

# Every 5 minutes, delete the files created more than an hour ago: a result stays downloadable for 60-65 minutes
# (a visitor looking at it for a long while can still save it), and at most ~65 minutes of output is on disk.
DELETE_CACHE = (300, 3600)
DELETE_CACHE_ENV = "VAE_FAMILY_DELETE_CACHE"


def delete_cache() -> tuple[int, int] | None:
    """(frequency, age) in seconds for gr.Blocks(delete_cache=...): DELETE_CACHE, or VAE_FAMILY_DELETE_CACHE
    ("FREQUENCY,AGE", or "off" for no deletion)."""
    value = os.environ.get(DELETE_CACHE_ENV, "").strip()
    if not value:
        return DELETE_CACHE
    if value.lower() in ("off", "none", "0"):
        return None
    try:
        frequency, age = (int(part) for part in value.split(","))
    except ValueError:
        raise ValueError(
            f"{DELETE_CACHE_ENV} must be 'FREQUENCY,AGE' in whole seconds or 'off', got {value!r}") from None
    if frequency < 1 or age < 1:
        raise ValueError(f"{DELETE_CACHE_ENV}: frequency and age must be at least 1 second, got {value!r}")
    return frequency, age


def temp_folder() -> Path:
    """gradio's temp folder, where uploads and generated files go (the rule of gradio.utils.get_upload_folder)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


def prune_leftovers(root: Path, age: float, now: float | None = None) -> int:
    """Remove what gradio leaves behind in its temp folder `root` and never deletes, once nothing has touched it for
    more than `age` seconds; returns how many entries were removed:

    - the empty folders directly under `root`: gradio stores each file in a folder named by its content hash, and
      `delete_cache` removes only the file, so the folders (4 KB and an inode each) would pile up forever;
    - the empty `tmp*` files directly under `root`: gr.File(type="filepath") (gradio 6.31, components/file.py)
      creates and abandons an empty NamedTemporaryFile there for every upload it hands to a handler.

    Nothing in use is touched: `os.rmdir` refuses a non-empty folder, adding or deleting a file renews a folder's
    mtime, and an upload being written is neither empty nor idle."""
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
            if now - info.st_mtime <= age:
                continue
            if entry.is_dir(follow_symlinks=False):
                os.rmdir(entry.path)
            elif entry.is_file(follow_symlinks=False) and entry.name.startswith("tmp") and info.st_size == 0:
                os.remove(entry.path)
            else:
                continue
            removed += 1
        except OSError:  # a folder that is not empty, or an entry gone meanwhile
            continue
    return removed


def delete_old_files(blocks, age: float | None, now: float | None = None) -> None:
    """What `delete_cache` runs every `frequency` seconds (and with age None when the server stops): delete the
    files this app created (its uploads and outputs) more than `age` seconds ago, by ctime, except those gradio
    keeps for good (components' initial values); then prune_leftovers.

    This is gradio 6.31's `route_utils.delete_files_created_by_app` with one fix: it iterates over copies of the
    sets of files. gradio's iterates over the live sets, which handlers add to from other threads, so under
    concurrent load a pass raises "Set changed size during iteration", and because the scheduled task does not
    catch it, cleanup stops for good (measured: the soak benchmark's temp folder then grows without bound).
    Copying a set of strings is atomic under the GIL."""
    now = time.time() if now is None else now
    keep = set()
    for block in list(blocks.blocks.values()):
        keep.update(getattr(block, "keep_in_cache", ()))
    for files in list(blocks.temp_file_sets):
        for path in list(files):
            if path in keep:
                continue
            try:
                if age is None or now - os.lstat(path).st_ctime > age:
                    os.remove(path)
                    files.discard(path)
            except FileNotFoundError:
                files.discard(path)
    prune_leftovers(Path(getattr(blocks, "GRADIO_CACHE", None) or temp_folder()), age or 0, now)


def install_cleanup() -> None:
    """Make gradio's delete_cache schedule (and its clean-up at shutdown) run delete_old_files. gradio looks the
    function up in its module each time, so replacing the module attribute is enough."""
    global gradio_delete_files
    from gradio import route_utils

    if route_utils.delete_files_created_by_app is not delete_old_files:
        gradio_delete_files = route_utils.delete_files_created_by_app
        route_utils.delete_files_created_by_app = delete_old_files


gradio_delete_files = None  # gradio's own pass, once install_cleanup replaced it (the tests show why)


def launch_settings() -> dict:
    """The keyword arguments of `app.launch` that bound what the server accepts: the upload limit."""
    return {"max_file_size": UPLOAD_LIMIT_BYTES}
