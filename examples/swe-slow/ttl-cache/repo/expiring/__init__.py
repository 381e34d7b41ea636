"""Caches whose entries expire."""
