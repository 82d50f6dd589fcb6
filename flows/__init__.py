"""Prefect flows that orchestrate the DVC pipeline (the library in coaug/ never imports Prefect)."""
