"""Handover terminal daemon."""
