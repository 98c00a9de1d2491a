"""Run configuration of the assets, derived from the engine's one options schema (:class:`TryOnOptions`).

An asset's config declares the engine options it uses under the options' own names (``option(name)`` takes the
default from ``TryOnOptions``) beside its check thresholds; :func:`engine_options` turns it into a
``TryOnOptions``, whose validation is the only one: a rule such as ``refinement_iou`` low <= high holds for
``run_virtual_try_on``, ``mycloset try-on`` and the launchpad alike. Device and dtype come from the model factory.
"""

import dataclasses
from typing import Any

import dagster as dg
from pydantic import Field

from ..engine.options import TryOnOptions

OPTION_DEFAULTS: dict[str, Any] = {field.name: field.default for field in dataclasses.fields(TryOnOptions)}


class InvalidOptionsError(dg.Failure):
    """The run configuration gives an engine option a value ``TryOnOptions`` refuses."""


def option(name: str, description: str) -> Any:
    """A config field for the engine option ``name`` with the engine's default (tuples as lists)."""
    default = OPTION_DEFAULTS[name]
    return Field(default=list(default) if isinstance(default, tuple) else default, description=description)


def engine_options(config: dg.Config | None, device: str, dtype: str) -> TryOnOptions:
    """``TryOnOptions`` from the engine options of ``config`` (fields named as the options), on ``device``/``dtype``."""
    values = {}
    if config is not None:
        for name, value in config.model_dump().items():
            if name in OPTION_DEFAULTS:
                values[name] = tuple(value) if isinstance(value, list) else value
    try:
        return TryOnOptions(device=device, dtype=dtype, **values)
    except ValueError as error:
        raise InvalidOptionsError(f"invalid run configuration: {error}", allow_retries=False) from error
