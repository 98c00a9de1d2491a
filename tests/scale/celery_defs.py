"""The operator's Celery definitions (``deploy/celery/definitions.py``) for the worker-pool tests, with the one
change that makes loads visible: the model factory notes, after each network it hands out, which worker process
asked and how many networks that process's engine pool has loaded so far (a JSON line in
``$MYCLOSET_TEST_LOADS``). The pool is the real one; only the note is added."""

import json
import os
import runpy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from mycloset_assets.checkpoints import LoadedModel
from mycloset_assets.defs.resources import ModelFactoryResource

from .project import PERSON_SIDE

OPERATOR = runpy.run_path(str(Path(__file__).resolve().parents[2] / "deploy" / "celery" / "definitions.py"))["defs"]


class NotedModelFactory(ModelFactoryResource):
    """The project's model factory; each network it hands out (loaded or in a wrapper) is noted with the process
    and its pool's loads."""

    def load(self, card: Mapping[str, Any]) -> tuple[LoadedModel, bool]:
        loaded = super().load(card)
        self._note(card)
        return loaded

    def wrapper(self, card: Mapping[str, Any], factory: Callable[..., Any], **settings: Any) -> Any:
        wrapper = super().wrapper(card, factory, **settings)
        self._note(card)
        return wrapper

    def _note(self, card: Mapping[str, Any]) -> None:
        note = {
            "worker": os.environ.get("MYCLOSET_TEST_WORKER", "run"),
            "pid": os.getpid(),
            "network": card["sha256"],
            "loads": self.pool().loads,
        }
        with open(os.environ["MYCLOSET_TEST_LOADS"], "a") as notes:
            notes.write(json.dumps(note) + "\n")


resources = dict(OPERATOR.resources)
resources["model_factory"] = NotedModelFactory(checkpoint_folder=os.environ.get("MYCLOSET_CHECKPOINTS", "zoo"))
defs = dg.Definitions(
    assets=OPERATOR.assets,
    resources=resources,
    executor=OPERATOR.executor,
    jobs=[dg.define_asset_job("persons", selection=[asset.key for asset in PERSON_SIDE])],
)


def persons_job() -> dg.JobDefinition:
    """The person side (photo, pose, parsing, representation) with the Celery executor."""
    return defs.resolve_job_def("persons")
