"""Models: the CNN baselines (plain nn.Modules) and the shared building blocks."""

from pyro_sr.models.cnn import CNN_ARCHS, CNNConfig, ResidualSR, SeedCNN, bicubic_upscale, build_cnn, nearest_upscale

__all__ = ["CNN_ARCHS", "CNNConfig", "ResidualSR", "SeedCNN", "bicubic_upscale", "build_cnn", "nearest_upscale"]
