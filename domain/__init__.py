"""The domain shared by services, offline training and the CLI: the request model and its
validation, feature schemas and the online feature store, the model repository format, model
quality metrics, and errors that carry their gRPC status by name.

No gRPC and no generated code here (an import-linter contract checks it): services convert their
messages into these types at their edge.
"""
