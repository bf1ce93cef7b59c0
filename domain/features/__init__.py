"""Features: the raw data model as columns, fitted schemas (one transform for training and
serving), their versions on disk, and the online store of per-ad and per-user values."""
