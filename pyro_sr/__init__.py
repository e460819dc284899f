"""pyro-sr: probabilistic image super-resolution in Pyro.

The Python API (``load``, ``degrade``, ``list_models``, ``SuperResolver``) is imported on first use, so that
``import pyro_sr.data`` and the command line do not pay for loading every part of the package.
"""

__version__ = "0.1.0"

__all__ = ["SuperResolver", "degrade", "list_models", "load"]


def __getattr__(name: str):
    if name in ("SuperResolver", "degrade", "load"):
        from pyro_sr import api

        return getattr(api, name)
    if name == "list_models":
        from pyro_sr.weights.loading import list_models

        return list_models
    raise AttributeError(f"module 'pyro_sr' has no attribute {name!r}")
