"""Behaviour every adapter of a port must show; subclassed once per adapter."""
