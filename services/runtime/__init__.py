"""Shared machinery without domain: event store, outbox relay, consumers, projections, settings."""
