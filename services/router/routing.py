"""Which ensemble scores a request (shared/REFERENCE.md's example rules).

search -> ctr_ensemble, conversion -> cvr_ensemble, anything else -> quality_ensemble. The routing
issue replaces this with ordered, prioritised, reloadable rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.request import Context


@dataclass(frozen=True)
class Route:
    name: str
    model: str
    reason: str


def choose_route(context: Context) -> Route:
    if context.data_type == "search":
        return Route("search", "ctr_ensemble", "data_type is search: click-through model")
    if context.data_type == "conversion":
        return Route("conversion", "cvr_ensemble", "data_type is conversion: conversion model")
    return Route("default", "quality_ensemble", f"data_type is {context.data_type}: quality model")
