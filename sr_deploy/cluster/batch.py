"""``upscale`` on a Ray cluster: the local job (:mod:`sr_deploy.runtime.jobs`) spread over a pool of actors
with Ray Data.

The driver plans the job as the local path does (:func:`~sr_deploy.runtime.jobs.plan_job`: the same inputs,
output names, collisions and problems; URI inputs and outputs through :mod:`sr_deploy.cluster.files`), removes
the temporary files a killed job left in the output folders (once), then streams one row per (input, output)
pair through ``Dataset.map`` on an actor pool: each actor loads the model once
(:func:`~sr_deploy.runtime.load.load_selected`, with the options of the local job) and runs
:func:`~sr_deploy.runtime.jobs.run_job` on each pair it is given, so reading, the per-file isolation of bad
files, tiling and batching of windows, atomic writes and skipping existing outputs are the local path's own,
and the files written are byte for byte the local path's for the same model, backend and precision. Actors
read their files in parallel; Ray Data shows the progress; outcomes come back as rows as they finish.

Pool: one actor per GPU on a GPU cluster (``num_gpus=1`` each), else one per ``cpus_per_worker`` CPU slots;
``workers`` caps it. Each actor's tiling memory budget is the local default divided by the actors its node
can hold, so a node's actors together stay within what one local job would use.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sr_deploy.artifacts import remove_stale_temp_files
from sr_deploy.cluster import files
from sr_deploy.cluster.connect import AUTO_ADDRESS, connected
from sr_deploy.data.image_io import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, printable
from sr_deploy.runtime.jobs import JobPlan, Outcome, expand_inputs, pair_outputs, plan_job, resolve_path, run_job
from sr_deploy.runtime.load import load_selected
from sr_deploy.runtime.tiling import default_memory_budget
from sr_deploy.video import VIDEO_SUFFIXES, is_video
from sr_deploy.vocabulary import AUTO


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one input of a cluster job: :class:`~sr_deploy.runtime.jobs.Outcome` with the source
    and destination as text (local paths as printable text, or URIs); ``status`` ``written``, ``exists`` or
    ``failed``."""

    source: str
    destination: str | None
    status: str
    message: str = ""

    @classmethod
    def of(cls, outcome: Outcome) -> FileOutcome:
        return cls(printable(outcome.source), None if outcome.destination is None else printable(outcome.destination),
                   outcome.status, outcome.message)


@dataclass(frozen=True)
class ClusterJob:
    """A finished cluster job: one outcome per input in the plan's order (planning problems first), and
    ``routes``: each distinct model route the actors chose, with its reason (one line per kind of node)."""

    outcomes: tuple[FileOutcome, ...]
    routes: tuple[str, ...]


@dataclass(frozen=True)
class Settings:
    """What every actor is told: the model and the options of the local job."""

    model: str | None
    backend: str
    precision: str | None
    max_psnr_drop: float
    tune_shape: tuple[int, int, int, int] | None
    tile: int | None
    overwrite: bool
    max_pixels: int | None
    gpu: bool
    cpus_per_worker: float


def plan_files(inputs: Sequence[str], output: str) -> tuple[list[tuple[str, str]], list[FileOutcome]]:
    """(source, destination) pairs and the inputs that failed before processing. Local inputs and a local
    output: :func:`~sr_deploy.runtime.jobs.plan_job`'s rules, videos found as the local command finds them
    and reported as not upscaled here (images only). URIs: a folder's images by suffix (not
    below it), or one file; the output folder gets ``<folder>/<input name>``, a single input may name a file,
    and outputs are checked against the inputs and each other by the local rule
    (:func:`~sr_deploy.runtime.jobs.pair_outputs`; local paths compared resolved, URIs as given)."""
    local = [text for text in inputs if not files.is_uri(text)]
    remote = [text for text in inputs if files.is_uri(text)]
    if not remote and not files.is_uri(output):
        plan = plan_job(local, output, accept=is_video, file_suffixes=VIDEO_SUFFIXES)
        images = [(os.fspath(s), os.fspath(d)) for s, d in plan.pairs if s.suffix.lower() in IMAGE_SUFFIXES]
        videos = [FileOutcome(printable(s), printable(d), "failed", f"{printable(s)} is a video: the cluster path "
                              "upscales images only; upscale it without --cluster")
                  for s, d in plan.pairs if s.suffix.lower() not in IMAGE_SUFFIXES]
        return images, [*map(FileOutcome.of, plan.problems), *videos]
    sources, problems = [], []
    if local:
        found, local_problems = _expand_local(local)
        sources += found
        problems += local_problems
    for uri in remote:
        found_uris, problem = files.list_uri(uri)
        sources += found_uris
        if problem:
            problems.append(FileOutcome(uri, None, "failed", problem))
    single = (not files.is_folder_uri(output)) if files.is_uri(output) else (
        not output.endswith(("/", os.sep)) and not Path(output).is_dir()
        and Path(output).suffix.lower() in IMAGE_SUFFIXES)
    pairs, refused = pair_outputs(sources, output, single, _name_in, _key)
    problems.extend(FileOutcome(src, dst, "failed", message) for src, dst, message in refused)
    return pairs, problems


def _name_in(folder: str, source: str) -> str:
    """``<folder>/<input name>``, for a local or URI ``folder`` and ``source``."""
    name = files.name_of(source) if files.is_uri(source) else Path(source).name
    return files.join(folder, name) if files.is_uri(folder) else os.path.join(folder, name)


def _key(text: str) -> Hashable:
    """What decides that two names are one file: a URI as given, a local path resolved."""
    return text if files.is_uri(text) else resolve_path(Path(text))


def _expand_local(inputs: Sequence[str]) -> tuple[list[str], list[FileOutcome]]:
    found, problems = expand_inputs(inputs)
    return [os.fspath(p) for p in found], [FileOutcome.of(p) for p in problems]


class Worker:
    """One actor: the model, loaded once, and :func:`~sr_deploy.runtime.jobs.run_job` for each row."""

    def __init__(self, settings: Settings) -> None:
        import ray

        s = self.settings = settings
        node = ray.get_runtime_context().get_node_id()
        resources: dict[str, float] = next((n["Resources"] for n in ray.nodes() if n["NodeID"] == node), {})
        slots = resources.get("GPU", 1) if s.gpu else resources.get("CPU", 1) // s.cpus_per_worker
        self.memory_budget = default_memory_budget() // max(1, int(slots))
        upscaler, selection = load_selected(s.model, backend=s.backend, precision=s.precision,
                                            tune_shape=s.tune_shape, max_psnr_drop=s.max_psnr_drop)
        self.upscaler = upscaler
        self.route = f"{upscaler.name} on {upscaler.device}: {selection.reason}"
        self.staging = Path(tempfile.mkdtemp(prefix="sr-deploy-cluster-"))

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        source, destination = _text(row["source"]), _text(row["destination"])
        status, message = self.process(source, destination)
        return {"source": row["source"], "destination": row["destination"], "status": status, "message": message,
                "route": self.route}

    def process(self, source: str, destination: str) -> tuple[str, str]:
        """Upscale one pair (local paths or URIs): the outcome's status and message."""
        s = self.settings
        remote_src, remote_dst = files.is_uri(source), files.is_uri(destination)
        if not (remote_src or remote_dst):
            return self._run(Path(source), Path(destination), s.overwrite)
        if remote_dst and not s.overwrite and files.exists(destination):
            return "exists", f"{destination} exists; pass --overwrite to replace it"
        with tempfile.TemporaryDirectory(dir=self.staging) as tmp:
            staged_in, staged_out = Path(tmp, "in"), Path(tmp, "out")
            staged_in.mkdir()
            try:
                src = files.download(source, staged_in) if remote_src else Path(source)
            except OSError as exc:
                return "failed", str(exc)
            dst = staged_out / files.name_of(destination) if remote_dst else Path(destination)
            status, message = self._run(src, dst, s.overwrite or remote_dst)
            message = message.replace(str(src), source).replace(str(dst), destination)
            if status == "written" and remote_dst:
                try:
                    files.upload(dst, destination)
                except OSError as exc:
                    return "failed", str(exc)
            return status, message

    def _run(self, source: Path, destination: Path, overwrite: bool) -> tuple[str, str]:
        s = self.settings
        [outcome] = run_job(self.upscaler, JobPlan(((source, destination),), ()), s.tile, self.memory_budget,
                            overwrite, max_pixels=s.max_pixels, remove_stale=False)  # once, on the driver
        return outcome.status, outcome.message


def _text(value: bytes | str) -> str:
    """A row's path: local paths travel as their bytes (any file name survives Arrow), URIs as text."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _cell(text: str) -> bytes | str:
    return text if files.is_uri(text) else os.fsencode(text)


def upscale_cluster(
    inputs: Sequence[str],
    output: str,
    *,
    model: str | None = None,
    backend: str = AUTO,
    precision: str | None = None,
    tile: int | None = None,
    overwrite: bool = False,
    max_psnr_drop: float = 0.0,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    tune_shape: tuple[int, int, int, int] | None = None,
    address: str = AUTO_ADDRESS,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    on_outcome: Callable[[FileOutcome], None] | None = None,
    on_start: Callable[[int, str], None] | None = None,
) -> ClusterJob:
    """Run the ``upscale`` job of ``inputs`` -> ``output`` on a Ray cluster (see the module docstring).

    Takes the local job's options (:func:`~sr_deploy.runtime.load.load_selected`'s model options, ``tile``,
    ``overwrite``, ``max_pixels``); ``address``: ``"auto"`` or a cluster address
    (:func:`sr_deploy.cluster.connect.connected`; a Ray already initialised in this process is used as it
    is); ``workers``: at most this many actors; ``cpus_per_worker``: CPU slots per actor on a CPU cluster.
    ``on_start(workers, kind)`` hears the pool's size and kind (``GPU``/``CPU``) before work starts;
    ``on_outcome`` each input's outcome as it finishes (planning problems first). The model must be a
    shipped name or a file at the same path on every node. Bad files are outcomes, not exceptions;
    BackendUnavailable when Ray is not installed.
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if cpus_per_worker <= 0:
        raise ValueError(f"cpus_per_worker must be > 0, got {cpus_per_worker}")
    pairs, problems = plan_files(inputs, output)
    for problem in problems:
        if on_outcome is not None:
            on_outcome(problem)
    for folder in sorted({Path(d).parent for _, d in pairs if not files.is_uri(d)}):
        remove_stale_temp_files(folder)  # what a killed job left (once here, not once per image in the actors)
    done: dict[tuple[str, str], FileOutcome] = {}
    routes: dict[str, None] = {}
    if pairs:
        with connected(address) as ray:
            resources = ray.cluster_resources()
            gpu = resources.get("GPU", 0) >= 1
            slots = int(resources["GPU"]) if gpu else max(1, int(resources.get("CPU", 1) // cpus_per_worker))
            size = max(1, min(slots, workers or slots, len(pairs)))
            if on_start is not None:
                on_start(size, "GPU" if gpu else "CPU")
            settings = Settings(model, backend, precision, max_psnr_drop, tune_shape, tile, overwrite, max_pixels,
                                gpu, cpus_per_worker)
            rows = ray.data.from_items([{"source": _cell(s), "destination": _cell(d)} for s, d in pairs],
                                       override_num_blocks=min(len(pairs), 4096))
            resource_args: dict[str, float] = {"num_gpus": 1} if gpu else {"num_cpus": cpus_per_worker}
            results = rows.map(Worker, fn_constructor_kwargs={"settings": settings},
                               compute=ray.data.ActorPoolStrategy(size=size),
                               **resource_args)
            for row in results.iter_rows():
                source, destination = _text(row["source"]), _text(row["destination"])
                outcome = FileOutcome(printable(source), printable(destination), row["status"], row["message"])
                done[(source, destination)] = outcome
                routes.setdefault(row["route"])
                if on_outcome is not None:
                    on_outcome(outcome)
    ordered = [done[pair] for pair in pairs if pair in done]
    return ClusterJob((*problems, *ordered), tuple(routes))
