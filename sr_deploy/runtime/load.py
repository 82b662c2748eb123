"""``load``: a model (shipped name, weights, ONNX, engine or ``"bicubic"``) -> a ready
:class:`~sr_deploy.backends.base.Upscaler` on the fastest route here, with the reason.

The route comes from the static ranking (:func:`~sr_deploy.runtime.select.decide`), or, with
``tune=True``, from timing every usable route on this machine once (:func:`~sr_deploy.runtime.tune.tune`,
cached). When the chosen route fails to start, the next candidate is tried and the reason says so.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ParamSpec

from sr_deploy.backends.base import Upscaler
from sr_deploy.backends.bicubic import BicubicUpscaler
from sr_deploy.backends.openvino import openvino_unavailable_reason
from sr_deploy.errors import BackendUnavailable, ExportError
from sr_deploy.export.int8 import PLAIN_MAX_DROP_DB
from sr_deploy.runtime.convert import convert_int8, int8_plan
from sr_deploy.runtime.select import (
    RANKING,
    Artifact,
    Route,
    Selection,
    decide,
    identify,
    int8_expectation,
    int8_made_on_demand,
    machine_facts,
    open_route,
)
from sr_deploy.runtime.tune import check_shape, measure_drop, tune
from sr_deploy.vocabulary import AUTO

P = ParamSpec("P")

#: The bicubic baseline (``load("bicubic")``): no file, one route.
BICUBIC_ROUTE = Route("bicubic", "cpu", "fp64", "bicubic")


@dataclass(frozen=True)
class Option:
    """A precision that may run a model within an accuracy budget: the file it runs from, the precision,
    and its Y-PSNR drop against fp32 measured on this machine (dB); ``engine``: the one CPU backend whose drop
    that is (int8 arithmetic differs between engines and devices), None when it holds for every route of the
    option."""

    artifact: Artifact
    precision: str
    drop: float
    engine: str | None = None

    def holds_on(self, route: Route) -> bool:
        """Whether the option's drop holds for ``route``."""
        return self.engine is None or (route.backend == self.engine and route.device == "cpu")


def int8_on_demand(artifact: Artifact, max_psnr_drop: float | None, backend: str,
                   log: Callable[[str], None] | None) -> tuple[Artifact, float]:
    """The int8 ONNX made on demand from ``artifact`` (weights or an fp32 ONNX) for ``backend``
    (:func:`convert_int8`: within ``max_psnr_drop``, or every layer int8 under the export's plain limit for None),
    identified, and its recorded Y-PSNR drop (dB). Raises :class:`BackendUnavailable` where that backend is not
    installed, and :class:`ExportError` when the int8 model is over its limit or its file records no drop."""
    if backend == "openvino" and (missing := openvino_unavailable_reason()):
        raise BackendUnavailable(missing)
    int8 = identify(convert_int8(artifact.path, max_psnr_drop, log, backend))  # reads its calibration record
    if int8.recorded_drop is None:
        raise ExportError(f"{int8.path} records no Y-PSNR drop: delete it to have it made again")
    return int8, float(int8.recorded_drop)


def budget_options(artifact: Artifact, max_psnr_drop: float, device: str | None,
                   log: Callable[[str], None] | None, backend: str = AUTO) -> list[Option]:
    """fp32, and every reduced precision of ``artifact`` (weights or an fp32 ONNX:
    :attr:`Artifact.chooses_precision`) whose Y-PSNR drop against fp32, measured on this machine, is within
    ``max_psnr_drop``, on ``backend`` (``auto``: any): int8 made within the budget on this CPU class (CPU backends
    only), bf16 and fp16 where a route runs them natively here (an fp32 ONNX: bf16 on OpenVINO)."""
    facts, note = machine_facts(), log or (lambda _m: None)
    options = [Option(artifact, "fp32", 0.0)]
    if int8_made_on_demand(artifact, "int8", device, backend):
        try:
            int8, drop = int8_on_demand(artifact, max_psnr_drop, backend, log)
            options.append(Option(int8, "int8", drop, int8.validated_engine or "onnxruntime"))
        except (ExportError, BackendUnavailable) as exc:
            note(f"int8 within {max_psnr_drop:g} dB: not available ({exc})")
    for precision in ("bf16", "fp16"):
        try:
            route = decide(artifact, facts, backend, precision, device, convert=True).route
        except (BackendUnavailable, ValueError):
            continue  # not native here (emulated bf16, fp16 without a GPU), or not on this backend
        drop = measure_drop(artifact.path, route, device, log)
        if drop <= max_psnr_drop:
            options.append(Option(artifact, precision, drop))
    return options


def file_budget(artifact: Artifact, precision: str | None, max_psnr_drop: float) -> str:
    """What the Y-PSNR budget ``max_psnr_drop`` (dB, > 0) means for a model file that runs as it is (an ONNX
    file or engine run in ``precision``, None: its own): one line for the reason. Only weights and fp32 ONNX
    files choose a precision by the budget (:attr:`Artifact.chooses_precision`); another file is held to the drop it
    records: raises ValueError naming the file when an int8 file records more than the budget, or was validated
    on a CPU class whose arithmetic does not saturate where this one's does
    (:func:`~sr_deploy.runtime.select.int8_expectation`'s WARNING)."""
    budget = f"the {max_psnr_drop:g} dB budget"
    if precision not in (None, artifact.precision):
        return f"{budget} is not used: --precision {precision} runs as asked"
    if artifact.precision == "fp32":
        return (f"{budget} is not used: the fp32 {artifact.kind} runs as it is (weights or an fp32 ONNX let the "
                "budget choose a precision)")
    if artifact.recorded_drop is None:
        return f"{budget} is not checked: {artifact.path.name} records no Y-PSNR drop"
    engine = f" ({artifact.validated_engine})" if artifact.validated_engine else ""
    where = f"on a {artifact.validated_isa} CPU{engine}" if artifact.validated_isa else "where it was exported"
    expectation = int8_expectation(artifact, machine_facts()) if artifact.precision == "int8" else None
    if expectation and expectation.startswith("WARNING"):
        raise ValueError(f"{artifact.path} cannot be held to {budget} here: {expectation}")
    if artifact.recorded_drop > max_psnr_drop:
        raise ValueError(f"{artifact.path} records a Y-PSNR drop of {artifact.recorded_drop:.3f} dB against fp32 "
                         f"{where}, over {budget}: export it again within the budget (export int8 --max-psnr-drop "
                         f"{max_psnr_drop:g}), or run the weights with the budget")
    return f"recorded Y-PSNR drop {artifact.recorded_drop:.3f} dB {where}, within {budget}"


def fastest_option(options: list[Option], device: str | None, tune_shape: tuple[int, int, int, int] | None,
                   log: Callable[[str], None] | None, backend: str = AUTO) -> tuple[Option, Selection]:
    """The option whose best route on ``backend`` (``auto``: any) is fastest: timed on this machine with
    ``tune_shape``, else by the static ranking; an option measured on one engine (:attr:`Option.engine`) runs only
    there. With more than one option, the reason ends with each option's fastest route, its time (when timed)
    and its drop, fastest first."""
    facts, note = machine_facts(), log or (lambda _m: None)
    picks = []
    for option in options:
        selection = decide(option.artifact, facts, backend, option.precision, device, convert=True)
        if tune_shape is not None:
            timed = tune(option.artifact.path, precision=option.precision, device=device, shape=tune_shape, log=log,
                         backend=backend)
            ranked = [(t.p50_ms or 0.0, r) for t, r in timed.ranked() if option.holds_on(r)]
            summary, first = timed.summary(), timed.route()
        else:
            ranked = [(float(RANKING.index(r)), r) for r in selection.candidates if option.holds_on(r)]
            summary, first = selection.reason, selection.route
        if not ranked:
            note(f"{option.precision}: its drop was measured on {option.engine}, which does not run it here")
            continue
        key, best = ranked[0]
        if best != first:  # the fastest route overall is not one the option's drop holds for
            summary = f"{best.label} (its drop was measured on {option.engine}); {summary}"
        picks.append((key, option, Selection(option.artifact, best, summary,
                                             (best, *(r for r in selection.candidates if r != best)))))
    _, option, selection = min(picks, key=lambda pick: pick[0])
    if len(picks) > 1:  # the trade-off the choice was made on: each option's fastest route and its drop
        def row(key: float, o: Option, s: Selection) -> str:
            took = f" {key:.1f} ms" if tune_shape is not None else ""
            drop = "the reference" if o.precision == "fp32" else f"drop {round(o.drop, 3) + 0.0:.3f} dB"  # no -0.000
            return f"{o.precision}{took} on {s.route.backend} ({drop})"

        table = ", ".join(row(*pick) for pick in sorted(picks, key=lambda pick: pick[0]))
        basis = "timed" if tune_shape is not None else "by the static ranking"
        selection = Selection(selection.artifact, selection.route,
                              f"{selection.reason}; the options, fastest first ({basis}): {table}",
                              selection.candidates)
    return option, selection


def load_selected(
    model: str | os.PathLike[str] | None = None,
    *,
    backend: str = AUTO,
    precision: str | None = None,
    device: str | None = None,
    scale: int | None = None,
    convert: bool | None = None,
    tune_shape: tuple[int, int, int, int] | None = None,
    max_psnr_drop: float = 0.0,
    log: Callable[[str], None] | None = None,
) -> tuple[Upscaler, Selection]:
    """:func:`load` that also returns the :class:`~sr_deploy.runtime.select.Selection` (with the reason to print).

    ``scale``: the bicubic baseline's factor (default 4); for a model, a check (ValueError when it differs).

    ``tune_shape``: with ``backend="auto"``, choose by timing every usable route on inputs of this NCHW
    shape (the tile shape the job will run) instead of by the static ranking; measured once per model,
    shape and machine, then read from the cache. ``convert``: whether a weights file may run on an ONNX
    or engine backend through a file made on first use (None: yes when ``backend`` names one or when
    tuning; int8 from weights or an fp32 ONNX: yes unless False). ``max_psnr_drop`` (dB, weights or an fp32 ONNX
    without ``precision``): the fastest on ``backend`` of fp32 and every reduced precision whose Y-PSNR drop against
    fp32, measured on this machine, is within it (:func:`budget_options`; int8 is made within the budget on first
    use); any other file is held to the drop it records (:func:`file_budget`). Weights or an fp32 ONNX with
    ``precision="int8"`` run int8 made on first use for ``backend`` on the CPU (:func:`int8_on_demand`:
    within ``max_psnr_drop``, or with 0 every layer int8 under the export's plain limit); an explicit
    other precision runs as asked. ``log`` hears about conversions, measurements and timings.
    """
    if tune_shape is not None:
        check_shape(tune_shape, "tune_shape")
    if model is not None and os.fspath(model) == "bicubic":
        scale = 4 if scale is None else scale
        artifact = Artifact(Path("bicubic"), "bicubic")
        selection = Selection(artifact, BICUBIC_ROUTE, f"bicubic x{scale}: MATLAB imresize, the baseline",
                              (BICUBIC_ROUTE,))
        return BicubicUpscaler(scale), selection
    upscaler, selection = _load_model(model, backend, precision, device, convert, tune_shape, max_psnr_drop, log)
    if scale is not None and upscaler.scale != scale:
        upscaler.close()
        raise ValueError(f"{selection.artifact.path} is a x{upscaler.scale} model, not x{scale} (scale chooses the "
                         "bicubic baseline's factor; for a model it is only checked)")
    return upscaler, selection


def _load_model(model: str | os.PathLike[str] | None, backend: str, precision: str | None, device: str | None,
                convert: bool | None, tune_shape: tuple[int, int, int, int] | None, max_psnr_drop: float,
                log: Callable[[str], None] | None) -> tuple[Upscaler, Selection]:
    """:func:`load_selected` of a model file or shipped name (not the bicubic baseline)."""
    artifact = identify(model)
    if max_psnr_drop < 0:
        raise ValueError(f"max_psnr_drop must be >= 0 dB, got {max_psnr_drop}")
    chooses = artifact.chooses_precision
    if max_psnr_drop > 0 and chooses and precision is None:
        option, selection = fastest_option(budget_options(artifact, max_psnr_drop, device, log, backend), device,
                                           tune_shape, log, backend)
        reason = (f"{option.precision}: Y-PSNR drop {option.drop:.3f} dB against fp32 measured here (budget "
                  f"{max_psnr_drop:g} dB); {selection.reason}")
        return _open(Selection(selection.artifact, selection.route, reason, selection.candidates), device, log)
    if convert is not False and int8_made_on_demand(artifact, precision, device, backend):
        int8, drop = int8_on_demand(artifact, max_psnr_drop or None, backend, log)
        engine = int8.validated_engine or int8_plan(backend)[1]  # the engine its drop holds for
        selection = decide(int8, machine_facts(), engine, "int8", "cpu")  # where its drop was measured
        made = f"within {max_psnr_drop:g} dB" if max_psnr_drop else f"every layer, limit {PLAIN_MAX_DROP_DB:g} dB"
        source = "weights" if artifact.kind == "weights" else "fp32 ONNX"
        reason = (f"int8 made from the {source} on first use ({made}; cached): Y-PSNR drop {drop:.3f} dB against fp32 "
                  f"measured here on {engine}; {selection.reason}")
        return _open(Selection(int8, selection.route, reason, selection.candidates), "cpu", log)
    budget = file_budget(artifact, precision, max_psnr_drop) if max_psnr_drop > 0 and not chooses else None
    tuning = tune_shape is not None and backend == AUTO
    if convert is None:
        convert = backend != AUTO or tuning
    selection = decide(artifact, machine_facts(), backend, precision, device, convert)
    if tuning:
        assert tune_shape is not None
        measured = tune(artifact.path, precision=precision, device=device, shape=tune_shape, log=log)
        best = measured.route()
        rest = tuple(r for r in selection.candidates if r != best)
        selection = Selection(artifact, best, measured.summary(), (best, *rest))
    if budget:
        selection = replace(selection, reason=f"{selection.reason}; {budget}")
    return _open(selection, device, log)


def _open(selection: Selection, device: str | None, log: Callable[[str], None] | None) -> tuple[Upscaler, Selection]:
    """Open the selection's route, or the next candidate when one fails to start (the reason says so)."""
    failures: list[str] = []
    for route in selection.candidates:
        try:
            upscaler = open_route(route, selection.artifact, device, log)
        except BackendUnavailable as exc:
            failures.append(f"{route.label} failed to start: {exc}")
            continue
        if failures:
            reason = f"{route.label} ({'; '.join(failures)}); planned: {selection.reason}"
            selection = Selection(selection.artifact, route, reason, selection.candidates)
        return upscaler, selection
    raise BackendUnavailable("; ".join(failures))


def _upscaler_only(select: Callable[P, tuple[Upscaler, Selection]], doc: str) -> Callable[P, Upscaler]:
    """``select`` returning only the upscaler (same parameters; ``help()`` and ``inspect.signature`` show them),
    documented by ``doc``."""

    @functools.wraps(select)
    def load(*args: P.args, **kwargs: P.kwargs) -> Upscaler:
        return select(*args, **kwargs)[0]

    load.__doc__, load.__name__, load.__qualname__ = doc, "load", "load"
    load.__signature__ = inspect.signature(select).replace(return_annotation="Upscaler")  # type: ignore[attr-defined]
    return load


load = _upscaler_only(load_selected, """Load ``model`` on the fastest route for ``precision`` -> an :class:`Upscaler`;
use it as a context manager (or call ``close()``) to free it.

Takes what :func:`load_selected` takes: ``model`` a shipped model name (None: the shipped default),
``.safetensors``/``.pt`` weights (PyTorch), an ``.onnx`` file (ONNX Runtime on CPU, CUDA or the TensorRT EP;
OpenVINO on the CPU), an ``.engine``/``.plan`` TensorRT engine, or ``"bicubic"`` (the baseline, ``scale`` times);
``backend`` ``auto``, ``torch``, ``onnxruntime``, ``openvino`` or ``tensorrt``; ``device`` ``cpu``, ``cuda`` or
``cuda:N`` (None: the fastest here); ``precision``, ``convert``, ``tune_shape``, ``max_psnr_drop`` and ``log`` as
there.
""")
