"""Performance benchmark of every method against its bare backbone (``make bench``).

Run ``python -m src.bench --help``; :func:`src.bench.__main__.main` is the entry point.
"""
