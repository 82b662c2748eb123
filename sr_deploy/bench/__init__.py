"""Bench: parity against torch fp32, accuracy against HR ground truth, latency, environment, reports.

Public API: :func:`run_bench` with a :class:`BenchConfig` writes a results folder;
:func:`write_report` (re)writes its Markdown report and plots; :func:`compare` finds regressions
between two results folders; :func:`evaluate` scores an upscaler on images (Y-PSNR/SSIM);
:func:`localize_divergence` names the first ONNX layer that departs from PyTorch.
Upscalers come from :mod:`sr_deploy.runtime` only.
"""

from sr_deploy.bench.accuracy import evaluate
from sr_deploy.bench.config import BenchConfig
from sr_deploy.bench.divergence import localize_divergence
from sr_deploy.bench.report import compare, write_report
from sr_deploy.bench.runner import run_bench

__all__ = ["BenchConfig", "compare", "evaluate", "localize_divergence", "run_bench", "write_report"]
