"""Monitoring service: telemetry ingestion and service-level views."""
