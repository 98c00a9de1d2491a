"""The inbox and the store on S3, as an operator configures them (``s3://`` URLs; endpoint and credentials from
the standard AWS environment variables), against moto's S3 server on 127.0.0.1: photos dropped by another
client become partitions, the photo assets store PNGs in the bucket, every format round-trips."""

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pytest
import torch
from PIL import Image
from upath import UPath

from mycloset_assets.defs.images import person_image
from mycloset_assets.defs.io_managers import OpenFormatIOManager, Weights, read_value, write_value
from mycloset_assets.defs.partitions import InboxResource
from mycloset_assets.defs.sensors import person_inbox_sensor
from mycloset_assets.vision.images import encode_png, load_image

boto3 = pytest.importorskip("boto3", reason="the scale extra installs boto3, s3fs and moto")
s3fs = pytest.importorskip("s3fs", reason="the scale extra installs s3fs")
moto_server = pytest.importorskip("moto.server", reason="the scale extra installs moto[server]")

pytestmark = pytest.mark.scale

BUCKET = "mycloset-test"


@dataclass
class Bucket:
    """The bucket, and a boto3 client standing for another machine that drops and reads files."""

    client: object
    name: str

    def put(self, key: str, data: bytes) -> bytes:
        self.client.put_object(Bucket=self.name, Key=key, Body=data)
        return data

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def etag(self, key: str) -> str:
        return self.client.head_object(Bucket=self.name, Key=key)["ETag"]


@pytest.fixture(scope="module")
def s3() -> Iterator[Bucket]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    environment = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        s3fs.S3FileSystem.clear_instance_cache()
        client = boto3.client("s3", endpoint_url=environment["AWS_ENDPOINT_URL"])
        client.create_bucket(Bucket=BUCKET)
        try:
            yield Bucket(client, BUCKET)
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            server.stop()


def png(seed: int) -> bytes:
    return encode_png(np.random.default_rng(seed).integers(0, 256, size=(12, 8, 3), dtype=np.uint8))


def tick(instance: dg.DagsterInstance, inbox: InboxResource, cursor: str | None) -> dg.SensorResult:
    result = person_inbox_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"inbox": inbox}))
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_every_format_round_trips_in_the_bucket(s3):
    store = UPath(f"s3://{BUCKET}/formats")
    values = {
        "mask": np.arange(12, dtype=np.uint8).reshape(3, 4),
        "report": {"verdict": "identified", "rates": [1.0, 0.5]},
        "maps": {"heatmaps": np.random.default_rng(0).random((2, 3)).astype(np.float32)},
        "weights": Weights({"w": torch.arange(3.0)}, {"entry": "u2netp"}),
    }
    paths = {name: write_value(value, store / name) for name, value in values.items()}
    assert {name: str(path) for name, path in paths.items()} == {
        "mask": f"s3://{BUCKET}/formats/mask.png",
        "report": f"s3://{BUCKET}/formats/report.json",
        "maps": f"s3://{BUCKET}/formats/maps.npz",
        "weights": f"s3://{BUCKET}/formats/weights.safetensors",
    }
    assert s3.get("formats/mask.png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(s3.get("formats/report.json")) == values["report"]
    np.testing.assert_array_equal(read_value(store / "mask"), values["mask"])
    assert read_value(store / "report") == values["report"]
    np.testing.assert_array_equal(read_value(store / "maps")["heatmaps"], values["maps"]["heatmaps"])
    weights = read_value(store / "weights")
    assert weights.metadata == {"entry": "u2netp"} and torch.equal(weights["w"], values["weights"]["w"])
    write_value({"replaced": True}, store / "mask")
    listed = s3.client.list_objects_v2(Bucket=BUCKET, Prefix="formats/")["Contents"]
    assert sorted(item["Key"] for item in listed) == [
        "formats/maps.npz",
        "formats/mask.json",
        "formats/report.json",
        "formats/weights.safetensors",
    ]


def test_photos_dropped_by_another_client_become_partitions_and_stored_pngs(s3):
    inbox = InboxResource(root=f"s3://{BUCKET}/inbox")
    resources = {"inbox": inbox, "io_manager": OpenFormatIOManager(base_dir=f"s3://{BUCKET}/store")}
    ann = s3.put("inbox/person/ann.png", png(1))
    with dg.instance_for_test() as instance:
        first = tick(instance, inbox, None)
        ann_key = f"ann-{hashlib.sha256(ann).hexdigest()[:12]}"
        assert [(r.run_key, r.partition_key) for r in first.run_requests] == [
            (hashlib.sha256(ann).hexdigest(), ann_key)
        ]
        assert json.loads(first.cursor)["files"] == {"ann.png": f"{len(ann)}:{s3.etag('inbox/person/ann.png')}"}
        assert tick(instance, inbox, first.cursor).run_requests == []

        buffer = io.BytesIO()
        Image.fromarray(np.full((64, 48, 3), 90, dtype=np.uint8)).save(buffer, format="JPEG")
        bob = s3.put("inbox/person/bob.jpg", buffer.getvalue())
        s3.put("inbox/person/ann copy.png", ann)
        second = tick(instance, inbox, first.cursor)
        bob_key = f"bob-{hashlib.sha256(bob).hexdigest()[:12]}"
        assert [r.partition_key for r in second.run_requests] == [bob_key]
        assert "ann copy.png = " + ann_key in tick(instance, inbox, first.cursor).skip_reason.skip_message

        rewritten = s3.put("inbox/person/ann.png", png(2))
        assert len(rewritten) == len(ann)
        third = tick(instance, inbox, second.cursor)
        assert [r.partition_key for r in third.run_requests] == [f"ann-{hashlib.sha256(rewritten).hexdigest()[:12]}"]

        result = dg.materialize([person_image], instance=instance, resources=resources, partition_key=bob_key)
        assert result.success
        stored = np.array(Image.open(io.BytesIO(s3.get(f"store/person_image/{bob_key}.png"))))
        np.testing.assert_array_equal(stored, load_image(bob).pixels)
        metadata = result.asset_materializations_for_node("person_image")[0].metadata
        assert metadata["path"].value == f"s3://{BUCKET}/store/person_image/{bob_key}.png"
        assert metadata["file"].value == "bob.jpg"
