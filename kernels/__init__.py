"""Ensemble scoring ops: Triton kernels for CUDA tensors, PyTorch references for CPU tensors.

Only the inference service imports this package. Entry point: `kernels.dispatch.score_ensemble`.
"""
