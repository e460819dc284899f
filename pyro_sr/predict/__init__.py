"""Prediction: super-resolving tensors and image files with a trained model, tiled, sampled or self-ensembled."""
