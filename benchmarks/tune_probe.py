"""Does the short probe of ``upscale --tune`` pick the route that is fastest on the job's real window?

``sr-deploy upscale`` with ``--backend auto`` times every route once on a probe of the first image's size cut
to at most 256 x 256 (a few seconds per route), while the job itself runs the window the tiler plans (with the
default memory budget a 540x960 LR image is one 540x960 window, 8x the probe's pixels and ~10-60 s a run per
route on 2 cores). This benchmark times every route of every option ``upscale --max-psnr-drop D`` weighs
(fp32, and bf16 / int8 within D where they run natively here) on each probe shape and on the job's window, in
one run on one CPU, and reports the choice each probe leads to (the runtime's own decision,
:func:`sr_deploy.runtime.load.fastest_option`) and its *regret*: the job-window time of the probe's pick over
that of the route fastest on the job window (1.00: the probe chose right). Writes ``tune_probe.{csv,md}``.

    python benchmarks/tune_probe.py --size 540x960 --probe 256x256 --probe 128x128 --max-psnr-drop 0.05 \
        --out 'benchmarks/results/{machine}'
"""

from __future__ import annotations

import argparse

import polars as pl

from sr_deploy.bench.environment import environment
from sr_deploy.bench.report import markdown_table
from sr_deploy.bench.results import results_folder, save_markdown, save_table
from sr_deploy.hardware import this_cpu
from sr_deploy.runtime.load import Option, budget_options, fastest_option, load
from sr_deploy.runtime.select import identify
from sr_deploy.runtime.tiling import plan_tiles
from sr_deploy.runtime.tune import tune


def size(text: str) -> tuple[int, int]:
    """``HEIGHTxWIDTH`` -> (height, width)."""
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="srresnet-x4", help="shipped model name or weights file")
    parser.add_argument("--size", type=size, default=(540, 960), help="the job's LR image, HEIGHTxWIDTH")
    parser.add_argument("--probe", type=size, action="append", help="probe shape(s), HEIGHTxWIDTH (repeatable)")
    parser.add_argument("--max-psnr-drop", type=float, default=0.05, help="the options weighed, as upscale's")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of timed runs per route (>= 2 runs)")
    parser.add_argument("--out", required=True, help="results folder ({machine} is replaced)")
    args = parser.parse_args()
    probes = args.probe or [(256, 256), (128, 128)]
    artifact = identify(args.model)
    options = budget_options(artifact, args.max_psnr_drop, None, print) if args.max_psnr_drop > 0 \
        else [Option(artifact, "fp32", 0.0)]  # as upscale: no budget, the model's own precision
    with load(artifact.path, backend="torch", precision="fp32") as reference:
        plan = plan_tiles(reference, *args.size)  # the window the job runs (the default memory budget)
    job = (plan.batch, 3, plan.tile_h, plan.tile_w)
    shapes = [(1, 3, h, w) for h, w in probes] + [job]
    decisions = {"no budget (fp32)": options[:1], **({f"--max-psnr-drop {args.max_psnr_drop:g}": options}
                                                     if len(options) > 1 else {})}
    rows, picks = [], []
    for shape in shapes:  # probes first, the job's window last (every route of every option on each)
        label = "x".join(map(str, shape[2:]))
        for option in options:
            timed = tune(option.artifact.path, precision=option.precision, shape=shape, budget_s=args.budget,
                         refresh=True, log=print)
            for t in timed.timings:
                usable = option.engine in (None, t.backend)  # an int8 drop holds on the engine it was measured on
                rows.append({"shape": label, "option": option.precision, "route": t.label,
                             "usable": usable, "p50_ms": None if t.p50_ms is None else round(t.p50_ms, 1),
                             "runs": t.runs,
                             "ms_per_lr_megapixel": None if t.p50_ms is None else
                             round(t.p50_ms / (shape[0] * shape[2] * shape[3] / 1e6), 1)})
        for decision, weighed in decisions.items():
            _, selection = fastest_option(weighed, None, shape, print)  # reads what was just measured
            picks.append((decision, label + (" (the job's window)" if shape == job else ""),
                          f"{selection.route.label} ({selection.route.precision})"))
    table = pl.DataFrame(rows)
    job_label = "x".join(map(str, job[2:]))
    summary_rows = []
    for decision, probe, pick in picks:
        precisions = [o.precision for o in decisions[decision]]
        on_job = {f"{r['route']} ({r['option']})": r["p50_ms"] for r in table.filter(
            (pl.col("shape") == job_label) & pl.col("usable") & pl.col("p50_ms").is_not_null()
            & pl.col("option").is_in(precisions)).iter_rows(named=True)}
        best = min(on_job, key=lambda k: on_job[k])
        summary_rows.append({"decision": decision, "probe": probe, "pick": pick, "pick_ms_on_job": on_job[pick],
                             "best_on_job": best, "best_ms_on_job": on_job[best],
                             "regret": round(on_job[pick] / on_job[best], 3)})
    order = list(decisions)
    summary = pl.DataFrame(sorted(summary_rows, key=lambda row: order.index(row["decision"])))
    env = environment()
    out = results_folder(args.out, env)
    save_table(table, out, "tune_probe", formats=("csv",))
    cpu = this_cpu()
    probe_args = " ".join(f"--probe {h}x{w}" for h, w in probes)
    text = [
        f"# The route probe of `upscale --tune` against the job's window ({args.model}, "
        f"{args.size[0]}x{args.size[1]} LR)",
        "",
        f"CPU: {cpu.model} ({cpu.isa}), {env['cpu']['logical_cores']} cores. The job runs {plan.count} window(s) "
        f"of {plan.tile_h}x{plan.tile_w} (batch {plan.batch}) with the default memory budget. Options: those "
        f"`upscale --max-psnr-drop {args.max_psnr_drop:g}` weighs here "
        f"({', '.join(f'{o.precision} {o.drop:.3f} dB' for o in options)}). Every route timed on each shape "
        f"(one untimed run, then >= 2 timed runs within {args.budget:g} s; p50), probes first.",
        "",
        "For each decision `upscale --backend auto` makes (the model's own precision; the fastest option within the "
        "budget), the route each probe picks (the runtime's own choice from these measurements) and its regret: its "
        "job-window time over that of the route fastest on the job window among the same options (1.000: the probe "
        "chose right).",
        "",
        markdown_table(summary),
        "",
        "Every route (`usable`: the option's measured drop holds on that engine):",
        "",
        markdown_table(table),
        "",
        f"Command: `python benchmarks/tune_probe.py --model {args.model} --size {args.size[0]}x{args.size[1]} "
        f"{probe_args} --max-psnr-drop {args.max_psnr_drop:g} --budget {args.budget:g} --out '{args.out}'`",
    ]
    print(save_markdown(out, "tune_probe", text))


if __name__ == "__main__":
    main()
