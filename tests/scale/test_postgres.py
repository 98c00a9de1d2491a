"""The project's graph on a PostgreSQL instance configured by ``deploy/postgres/dagster.yaml``: two people
(the CP-VTON person side, in one ranged run), one garment and one pair materialise end to end; the runs, events
and dynamic partitions are in Postgres, where a second instance object, and SQL, see them."""

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from .project import GARMENT_SIDE, GRAPH, PAIR, PERSON_SIDE, lay_out, prepare, run_config

pytestmark = pytest.mark.scale
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def materialise(instance, layout, assets, **kwargs) -> dg.ExecuteInProcessResult:
    keys = [asset.key for asset in assets]
    names = [key.to_user_string() for key in keys]
    result = dg.materialize(
        GRAPH, selection=keys, instance=instance, resources=layout.resources(), run_config=run_config(names), **kwargs
    )
    assert result.success
    return result


def test_photos_materialise_end_to_end_on_postgres(dagster_home, postgres, database, tmp_path, synth_file):
    layout = lay_out(tmp_path / "project", synth_file, people=2)
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        prepare(instance, layout)
        persons = materialise(
            instance, layout, PERSON_SIDE, tags=dict(zip(RANGE, (layout.persons[0], layout.persons[-1]), strict=True))
        )
        garments = materialise(instance, layout, GARMENT_SIDE, partition_key=layout.garment)
        pair = materialise(instance, layout, PAIR, partition_key=layout.pairs[0])
        runs = {result.run_id for result in (persons, garments, pair)}
    finally:
        instance.dispose()

    second = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        assert set(second.get_dynamic_partitions("person_images")) == set(layout.persons)
        assert second.get_dynamic_partitions("garment_images") == [layout.garment]
        for run_id in runs:
            assert second.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        for asset in PERSON_SIDE:
            assert second.get_materialized_partitions(asset.key) == set(layout.persons), asset.key
        assert second.get_materialized_partitions(PAIR[-1].key) == {str(layout.pairs[0])}
        events = second.fetch_materializations(PAIR[-1].key, limit=10).records
        assert [event.run_id for event in events] == [pair.run_id]
        path = events[0].asset_materialization.metadata["path"].value
        stored = np.array(Image.open(path))
        assert stored.shape == (64, 48, 3) and stored.dtype == np.uint8
        total = second.get_runs_count()
    finally:
        second.dispose()

    connection = postgres.connect(database)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM runs WHERE status = 'SUCCESS'")
        assert cursor.fetchone()[0] == total
        cursor.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", (pair.run_id,))
        assert cursor.fetchone()[0] > 10
        cursor.execute("SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'person_images'")
        assert {row[0] for row in cursor.fetchall()} == set(layout.persons)
    connection.close()
