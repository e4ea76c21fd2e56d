"""Loading and validating the workflow configuration outside Snakemake (tests, notebooks).

Inside the workflow, ``workflow/rules/common.smk`` validates the same file against the same
schema with :func:`snakemake.utils.validate`, which also fills the schema's defaults.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().parents[2]
CONFIG_FILE = PROJECT_DIR / "config" / "config.yaml"
SCHEMA_FILE = PROJECT_DIR / "workflow" / "schemas" / "config.schema.yaml"


def deep_update(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``overrides`` merged in recursively (as Snakemake merges configs)."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_update(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` against the schema, filling defaults in place; return it."""
    from snakemake.utils import validate

    validate(config, str(SCHEMA_FILE), set_default=True)
    return config


def load_config(overrides: Mapping[str, Any] | None = None, path: Path = CONFIG_FILE) -> dict:
    """The project's config file with ``overrides`` merged in, validated, defaults filled."""
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    return validate_config(deep_update(config, overrides or {}))


def plain(value: Any) -> Any:
    """Config values as JSON/YAML-ready builtins (mapping keys as text)."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value
