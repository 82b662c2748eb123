"""sr-deploy: super-resolution models from training to verified, fast inference.

Public API (the rest is machinery):

- :class:`sr_deploy.models.ModelDescriptor`, :func:`sr_deploy.models.build_model`,
  :func:`sr_deploy.models.load_weights`, :func:`sr_deploy.models.save_weights`
- :func:`sr_deploy.data.read_image`, :func:`sr_deploy.data.write_image`, :func:`sr_deploy.data.imresize`
- :mod:`sr_deploy.metrics` (pure PSNR/SSIM functions)
"""

__version__ = "0.1.0"
