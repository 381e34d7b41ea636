"""Noticing when something stops."""
