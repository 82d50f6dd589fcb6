"""The MLflow registry: registration, champion/challenger promotion, the served bundle and search."""
