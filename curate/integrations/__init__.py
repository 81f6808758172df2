"""Thin training callbacks that feed a curate.Recorder from a framework's training loop.

Each imports its framework only when called (`pip install curate[lightning]` or
`curate[huggingface]`); importing this package needs neither.
"""
