"""pyro-sr: probabilistic image super-resolution in Pyro."""

__version__ = "0.1.0"
