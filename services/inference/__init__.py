"""Inference service: model repository, Open Inference Protocol, ensemble execution."""
