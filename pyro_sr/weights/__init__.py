"""Checkpoints (the file format), the bundled weights and loading any model by name, file or run folder."""
