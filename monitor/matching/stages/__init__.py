"""Matching stages. Each is pure: decoded images in, arrays or typed hits out.

A stage knows no database, HTTP or CLI, so it can be benchmarked and reused alone.
"""
