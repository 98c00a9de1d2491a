"""The project's graph laid out for the scale tests: synthesized CP-VTON checkpoints, people and one garment in an
inbox, the checkpoint analyses and model cards materialised, the photo partitions added. Cheap run config
(``SMALL``) keeps each network step to a fraction of a second."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from PIL import Image

from mycloset_assets.defs.checkpoints import canonical_checkpoint, checkpoint_analysis, register_checkpoint_files
from mycloset_assets.defs.images import garment_image, person_image
from mycloset_assets.defs.io_managers import OpenFormatIOManager
from mycloset_assets.defs.models import MODEL_ASSETS
from mycloset_assets.defs.partitions import InboxResource, image_partition_key, pair_key
from mycloset_assets.defs.refinement import refined_garment_mask
from mycloset_assets.defs.resources import ModelFactoryResource
from mycloset_assets.defs.tryon import (
    garment_mask,
    human_parsing,
    person_representation,
    pose,
    tryon_result,
    warped_garment,
)

from ..defs.test_tryon import DEMO, SMALL, ZOO

CPVTON_ENTRIES = ("openpose_body_coco18", "schp_lip20", "u2netp", "cpvton_gmm", "cpvton_tom")
CPVTON_SLOTS = ("pose", "parsing", "garment_mask", "gmm", "tom")
PERSON_SIDE = (person_image, pose, human_parsing, person_representation)
GARMENT_SIDE = (garment_image, garment_mask, refined_garment_mask)
PAIR = (warped_garment, tryon_result)
GRAPH = [checkpoint_analysis, canonical_checkpoint, *MODEL_ASSETS.values(), *PERSON_SIDE, *GARMENT_SIDE, *PAIR]
NETWORK_STEPS = ("pose", "human_parsing", "garment_mask", "warped_garment", "tryon_result")


@dataclass
class Layout:
    root: Path
    persons: list[str]
    garment: str

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def pairs(self) -> list[dg.MultiPartitionKey]:
        return [pair_key(person, self.garment) for person in self.persons]

    def environment(self) -> dict[str, str]:
        """What ``mycloset_assets.definitions`` reads: where the checkpoints, the inbox and the storage are."""
        return {
            "MYCLOSET_CHECKPOINTS": str(self.root / "zoo"),
            "MYCLOSET_INBOX": str(self.root / "inbox"),
            "MYCLOSET_STORAGE": str(self.store),
        }

    def resources(self) -> dict[str, Any]:
        return {
            "model_factory": ModelFactoryResource(checkpoint_folder=str(self.root / "zoo")),
            "inbox": InboxResource(root=str(self.root / "inbox")),
            "io_manager": OpenFormatIOManager(base_dir=str(self.store)),
        }


def lay_out(root: Path, synth_file: Callable[..., Path], people: int, size: tuple[int, int] = (48, 64)) -> Layout:
    """The CP-VTON zoo (links to synthesized files) and an inbox of ``people`` photos (``size``, width x height)
    and one small garment."""
    for entry in CPVTON_ENTRIES:
        target = root / "zoo" / ZOO[entry]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(synth_file(entry))
    inbox = InboxResource(root=str(root / "inbox"))
    for kind in ("person", "garment"):
        inbox.folder(kind).mkdir(parents=True)
    astronaut = Image.open(DEMO / "astronaut.png").convert("RGB")
    persons = []
    for index in range(people):
        path = inbox.folder("person") / f"p{index}.png"
        astronaut.crop((64 + 8 * index, 0, 448, 512)).resize(size).save(path)
        persons.append(image_partition_key(path))
    garment = inbox.folder("garment") / "shirt.png"
    Image.open(DEMO / "tshirt.png").convert("RGB").resize((48, 64)).save(garment)
    return Layout(root, persons, image_partition_key(garment))


def run_config(names: list[str]) -> dict[str, Any]:
    """``SMALL`` for the steps among ``names``."""
    return {"ops": {name: {"config": config} for name, config in SMALL.items() if name in names}}


def prepare(instance: dg.DagsterInstance, layout: Layout) -> None:
    """Analyses and model cards of the CP-VTON zoo materialised; the photo partitions added."""
    resources = layout.resources()
    for key in register_checkpoint_files(instance, resources["model_factory"].files()):
        dg.materialize([checkpoint_analysis], instance=instance, resources=resources, partition_key=key)
    models = [MODEL_ASSETS[slot] for slot in CPVTON_SLOTS]
    assert dg.materialize([*GRAPH], selection=[m.key for m in models], instance=instance, resources=resources).success
    instance.add_dynamic_partitions("person_images", layout.persons)
    instance.add_dynamic_partitions("garment_images", [layout.garment])
