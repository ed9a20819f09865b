"""Keras 3 `.keras` archives, read from the zip in memory.

Entries are looked up by their fixed names (`config.json`, `metadata.json`, `model.weights.h5`);
nothing is ever extracted to disk, so hostile entry names such as `../../x` never touch the file
system. The weights file is opened inside the zip on demand (the archive stores it uncompressed).
"""

from __future__ import annotations

import json
import zipfile
from contextlib import contextmanager
from typing import Any

from modeltool.errors import LoadError
from modeltool.formats import MAX_CONFIG_BYTES, Format
from modeltool.ir import Graph, Model, Weight
from modeltool.keras.weights import k3_weights
from modeltool.loaders.keras_common import keras_model, training_summary

WEIGHTS_ENTRY = "model.weights.h5"


def _read_json(path: str, zf: zipfile.ZipFile, name: str) -> Any:
    info = zf.getinfo(name)
    if info.file_size > MAX_CONFIG_BYTES:
        raise LoadError(f"{path}: {name} is {info.file_size} bytes, over the {MAX_CONFIG_BYTES}-byte limit")
    try:
        return json.loads(zf.read(name).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise LoadError(f"{path}: {name} in the archive is not valid JSON ({exc})") from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:  # CRC errors, truncated members
        raise LoadError(f"{path}: cannot read {name} from the archive ({exc})") from exc


def _weights_opener(path: str):
    import h5py

    @contextmanager
    def open_weights():
        with zipfile.ZipFile(path) as zf, zf.open(WEIGHTS_ENTRY) as fh, h5py.File(fh, "r") as f:
            yield f

    return open_weights


def load(path: str, **options: Any) -> Model:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise LoadError(f"{path}: corrupted zip archive ({exc})") from exc
    with zf:
        names = set(zf.namelist())
        config = _read_json(path, zf, "config.json")
        meta = _read_json(path, zf, "metadata.json") if "metadata.json" in names else {}
    writer = {"keras_version": meta.get("keras_version"), "date_saved": meta.get("date_saved")}
    compile_cfg = config.get("compile_config") if isinstance(config, dict) else None
    training = None
    if compile_cfg:
        training = training_summary(
            compile_cfg.get("optimizer"), compile_cfg.get("loss"), compile_cfg.get("metrics"), compile_cfg
        )

    def weights(graph: Graph | None) -> list[Weight]:
        if WEIGHTS_ENTRY not in names:
            return []
        import h5py

        opener = _weights_opener(path)
        try:
            with opener() as f:
                return k3_weights(opener, f, graph)
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise LoadError(f"{path}: {WEIGHTS_ENTRY} in the archive is unreadable ({exc})") from exc
        finally:
            del h5py

    extra = {"archive_entries": sorted(names)}
    return keras_model(path, Format.KERAS_V3, config, writer, training, weights, extra)
