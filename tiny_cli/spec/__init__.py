"""Architectures as data: the one activation table, the skip rule, the config sections.

The bottom layer: it imports nothing else of tiny (only `errors`).
"""
