"""The sr-deploy version (one place; the package, artifact metadata and engine sidecars read it)."""

__version__ = "0.1.0"
