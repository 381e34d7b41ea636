"""Retrying what fails for a while."""
