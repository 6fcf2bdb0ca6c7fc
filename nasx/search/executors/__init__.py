"""Executors run trials of a study: ``local`` (in-process) and ``ray`` (Ray Tune)."""
