"""The `scoremesh` command and the local supervisor behind `scoremesh up`."""
