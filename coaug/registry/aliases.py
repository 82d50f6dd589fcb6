"""Registry aliases (``@challenger``, ``@champion``) resolved to versions, with one-line errors."""

from __future__ import annotations

from coaug.errors import CoaugError

CHAMPION = "champion"


def registered_aliases(client, name: str, tracking_uri: str) -> dict[str, str]:
    """``alias -> version`` of the registered model ``name``; fails when the model was never registered."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise CoaugError(
                f"registry is empty: no model '{name}' in {tracking_uri}; run `dvc repro train` first"
            ) from None
        raise
    return {alias: str(version) for alias, version in model.aliases.items()}


def aliased_version(aliases: dict[str, str], name: str, alias: str) -> str:
    if alias not in aliases:
        known = ", ".join(f"@{a}" for a in sorted(aliases)) or "none"
        raise CoaugError(f"model '{name}' has no alias '@{alias}' (aliases: {known})")
    return aliases[alias]
