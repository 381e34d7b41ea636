"""Doing things on a schedule."""
