"""Features service: raw ads requests -> dense float32 matrices, one schema for training and serving."""
