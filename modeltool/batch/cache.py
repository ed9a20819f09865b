"""Results of finished jobs, keyed by content, so a rerun skips what is done and an interrupted run resumes.

A job's key is a hash of what decides its result: every byte of the source (all files of a SavedModel
or checkpoint folder, with their names), the target, the convert options (and the content of the
files they name: a custom-objects module, calibration data), and the versions of modeltool and of the
libraries that convert and run models. Renaming or moving a model keeps its key; editing one byte, or
upgrading tf2onnx, does not.

The cache is a folder (default `<out>/.modeltool-cache`): one JSON file per finished job, written
atomically as each job ends, plus two small tables the driver keeps: the measured peak memory per
source and target (what the memory-aware pool plans with, failures included), and file hashes by
path, size and modification time (a rerun over a large zoo does not read every byte again).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from importlib import metadata
from typing import Any

from modeltool.batch.jobs import KILLED_AT_LIMIT, REPEATABLE, TIMEOUT, Job, JobResult
from modeltool.batch.manifest import PATH_FIELDS
from modeltool.deps import DISTRIBUTION

#: distributions whose version is part of every key: a new converter or runtime redoes the work
VERSIONED = ("tensorflow", "keras", "tf-keras", "tf2onnx", "onnx", "onnxruntime", "onnxruntime-gpu", "ai-edge-litert")
CHUNK = 1 << 20


def library_versions() -> dict[str, str | None]:
    """modeltool's version and those of the libraries in VERSIONED (None when absent), read from
    the installed metadata, never by importing them."""
    out: dict[str, str | None] = {}
    for name in (DISTRIBUTION, *VERSIONED):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


class Cache:
    """The cache folder of a run."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        os.makedirs(os.path.join(folder, "results"), exist_ok=True)
        self._peaks: dict[str, int] = _read_json(os.path.join(folder, "peaks.json"))
        self._hashes: dict[str, list] = _read_json(os.path.join(folder, "hashes.json"))
        self._memo: dict[str, str] = {}

    # ------------------------------------------------------------------ content

    def content_hash(self, path: str) -> str:
        """sha256 of a file, or of a folder's files and their relative names (a checkpoint prefix:
        the files that start with it); "missing:<path>" when there is nothing."""
        if path in self._memo:
            return self._memo[path]
        files = _files_of(path)
        if not files:
            digest = f"missing:{path}"
        elif len(files) == 1 and files[0][1] == path:
            digest = self._file_hash(path)
        else:
            h = hashlib.sha256()
            for rel, full in files:
                h.update(rel.encode() + b"\0" + self._file_hash(full).encode() + b"\0")
            digest = h.hexdigest()
        self._memo[path] = digest
        return digest

    def _file_hash(self, path: str) -> str:
        st = os.stat(path)
        stamp = [st.st_size, st.st_mtime_ns]
        known = self._hashes.get(path)
        if known and known[:2] == stamp:
            return known[2]
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
        self._hashes[path] = [*stamp, h.hexdigest()]
        return h.hexdigest()

    def job_key(self, job: Job, versions: dict[str, str | None]) -> str:
        """The key of `job`: source content, target, options (with the content of the files they name)
        and library versions."""
        named = {k: self.content_hash(job.options[k]) for k in PATH_FIELDS if job.options.get(k)}
        blob = json.dumps({"source": self.content_hash(job.source), "target": job.target, "options": job.options,
                           "files": named, "versions": versions}, sort_keys=True)  # fmt: skip
        return hashlib.sha256(blob.encode()).hexdigest()

    # ------------------------------------------------------------------ results

    def get(self, job: Job, out: str) -> JobResult | None:
        """The cached result of `job` when its files are still under `out`, else None."""
        data = _read_json(self._result_path(job))
        if not data or data.get("job") != job.id:
            return None
        result = JobResult.from_dict(data.get("result", {}))
        if result.status in KILLED_AT_LIMIT:
            limit = job.timeout if result.status == TIMEOUT else job.max_memory
            if not limit or limit > result.details.get("limit", 0):
                return None  # a higher limit (or none) now: it may finish
        needed = [p for p in (result.artifact, result.report) if p]
        if any(not os.path.lexists(os.path.join(out, p)) for p in needed):
            return None  # --out was cleaned or is another folder: run it again
        result.cached = True
        return result

    def put(self, job: Job, result: JobResult) -> None:
        """Record a finished job: its repeatable outcomes, and kills at a limit with the limit; not a crash,
        an internal error or a kill by the system (they may not happen again)."""
        if not job.key:
            return
        at_limit = result.status in KILLED_AT_LIMIT and "limit" in result.details
        if result.status in REPEATABLE or at_limit:
            _write_json(self._result_path(job), {"job": job.id, "key": job.key, "result": result.to_dict()})
        else:  # an older result of the same job is no longer what it gives
            try:
                os.remove(self._result_path(job))
            except OSError:
                pass

    def _result_path(self, job: Job) -> str:
        """One file per key and model id: two copies of one file in a zoo are two jobs with two artifacts."""
        named = hashlib.sha256(job.id.encode()).hexdigest()[:12]
        return os.path.join(self.folder, "results", f"{job.key}-{named}.json")

    # ------------------------------------------------------------------ memory

    def peak(self, job: Job) -> int | None:
        """The highest resident memory measured for this source and target (any options), if known."""
        return self._peaks.get(self._peak_key(job))

    def remember_peak(self, job: Job, result: JobResult) -> None:
        if result.peak_memory and not result.cached:
            key = self._peak_key(job)
            self._peaks[key] = max(self._peaks.get(key, 0), int(result.peak_memory))

    def _peak_key(self, job: Job) -> str:
        return f"{self.content_hash(job.source)}:{job.target}"

    def save(self) -> None:
        """Write the driver's tables (peaks, file hashes)."""
        _write_json(os.path.join(self.folder, "peaks.json"), self._peaks)
        _write_json(os.path.join(self.folder, "hashes.json"), self._hashes)


def _files_of(path: str) -> list[tuple[str, str]]:
    """(name relative to the model, full path) of every file a model consists of, sorted."""
    if os.path.isfile(path):
        return [(os.path.basename(path), path)]
    if os.path.isdir(path):
        out = []
        for folder, dirs, names in os.walk(path):
            dirs.sort()
            for name in sorted(names):
                full = os.path.join(folder, name)
                out.append((os.path.relpath(full, path).replace(os.sep, "/"), full))
        return out
    head, prefix = os.path.split(path)  # a checkpoint prefix: its .index and data shards
    if prefix and os.path.isdir(head or "."):
        return [(n, os.path.join(head, n)) for n in sorted(os.listdir(head or ".")) if n.startswith(prefix + ".")]
    return []


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def _write_json(path: str, data: Any) -> None:
    """Whole or not at all: a run killed mid-write leaves the previous file (or none)."""
    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)
