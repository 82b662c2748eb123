"""Scale-out on Ray (the ``[cluster]`` extra): the ``upscale`` job on Ray Data (:func:`upscale_cluster`) and the
HTTP service of :mod:`sr_deploy.serve` as a Ray Serve deployment (:mod:`sr_deploy.cluster.deployment`, which
needs the ``[serve]`` extra too, so it is imported from there).

Ray is imported only when a cluster is used; without it those calls raise
:class:`~sr_deploy.errors.BackendUnavailable` saying how to install it.
"""

from sr_deploy.cluster.batch import ClusterJob, FileOutcome, upscale_cluster
from sr_deploy.cluster.connect import INSTALL_HINT, require_ray

__all__ = ["INSTALL_HINT", "ClusterJob", "FileOutcome", "require_ray", "upscale_cluster"]
