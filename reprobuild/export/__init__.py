"""Turning a canonical tree into deliverable artefacts."""
