"""Inference: super-resolving tensors and image files with a trained model."""
