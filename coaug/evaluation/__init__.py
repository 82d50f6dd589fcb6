"""Scoring runs, paired tests and the report (the ``evaluate`` and ``report`` stages)."""
