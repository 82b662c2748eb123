"""Bench: parity against torch fp32, accuracy against HR ground truth, latency, environment, reports.

Public API: :func:`run_bench` with a :class:`BenchConfig` writes a results folder;
:func:`write_report` (re)writes its Markdown report and plots; :func:`compare_runs` finds regressions
between two results folders; :func:`localize_divergence` names the first ONNX layer that departs from
PyTorch. Scoring (Y-PSNR/SSIM) and output comparison live in the core (:mod:`sr_deploy.scoring`,
:mod:`sr_deploy.compare`).
Upscalers come from :mod:`sr_deploy.runtime` only.
"""

from sr_deploy.bench.config import BenchConfig
from sr_deploy.bench.divergence import localize_divergence
from sr_deploy.bench.report import compare_runs, write_report
from sr_deploy.bench.run import run_bench

__all__ = ["BenchConfig", "compare_runs", "localize_divergence", "run_bench", "write_report"]
