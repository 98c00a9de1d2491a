"""The project's person side with the project's resources and Dagster's default (multiprocess) executor, served
by the daemon in the run-retry test (``dagster-daemon run -m tests.scale.retry_defs``): no sensors, no
automation, so the only runs are the test's and their retries."""

import dagster as dg

from mycloset_assets import definitions

from .project import GRAPH, PERSON_SIDE

defs = dg.Definitions(
    assets=GRAPH,
    resources=definitions.defs.resources,
    jobs=[dg.define_asset_job("persons", selection=[asset.key for asset in PERSON_SIDE])],
)
