"""Router service: the public entry point (validation, routing, fan-out, post-processing)."""
