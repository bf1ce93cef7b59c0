"""Models: the repository format (safetensors + YAML, never pickle) and quality metrics."""
