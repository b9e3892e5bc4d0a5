"""Offline skill learning: each algorithm turns a dataset into an LLC checkpoint plus a report."""
