"""The plain-Python try-on engine, as one import: ``run_virtual_try_on(person, garment) -> TryOnResult``.

The parts live in :mod:`mycloset_assets.engine`: ``models`` (which checkpoint fills each role, the pool of
loaded networks), ``stages`` (each step on plain arrays), ``run`` (the orchestration, cache and monitor),
``result`` (what a run returns) and ``outputs`` (PNGs and report.json). The content cache is
:mod:`mycloset_assets.engine_cache`.
"""

from .engine.errors import EngineError, MissingModelsError, PersonNotFoundError
from .engine.models import Checkpoint, ModelPool, ModelSet, configure_default_pool, default_pool
from .engine.options import TryOnOptions
from .engine.result import ModelInfo, TryOnResult
from .engine.run import TryOnRequest, run_virtual_try_on, run_virtual_try_on_batch
from .engine_cache import ContentCache, default_cache

__all__ = [
    "Checkpoint",
    "ContentCache",
    "EngineError",
    "MissingModelsError",
    "ModelInfo",
    "ModelPool",
    "ModelSet",
    "PersonNotFoundError",
    "TryOnOptions",
    "TryOnRequest",
    "TryOnResult",
    "configure_default_pool",
    "default_cache",
    "default_pool",
    "run_virtual_try_on",
    "run_virtual_try_on_batch",
]
