"""The checkpoint analysis asset: every file in a zoo folder, analysed from its contents."""

from collections import Counter
from pathlib import Path

import dagster as dg

from ..checkpoints import analyze


class ZooConfig(dg.Config):
    """Where the checkpoint files are."""

    folder: str = "zoo"


@dg.asset(group_name="checkpoints", kinds={"pytorch"})
def checkpoint_analysis(context: dg.AssetExecutionContext, config: ZooConfig) -> dg.MaterializeResult:
    """The analyzer's report on every file under the zoo folder: verdict, registry entry, key match."""
    folder = Path(config.folder)
    if not folder.is_dir():
        raise dg.Failure(f"zoo folder {folder.resolve()} does not exist; set the asset's config 'folder'")
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    reports = [analyze(path) for path in paths]
    verdicts = Counter(report.verdict for report in reports)
    rows = [
        dg.TableRecord(
            {
                "path": str(Path(r.path).relative_to(folder)),
                "verdict": r.verdict,
                "entry": r.entry or "",
                "family": r.family or "",
                "match_rate": r.match_rate,
                "reason": r.reason,
            }
        )
        for r in reports
    ]
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("path", "string"),
            dg.TableColumn("verdict", "string"),
            dg.TableColumn("entry", "string"),
            dg.TableColumn("family", "string"),
            dg.TableColumn("match_rate", "float"),
            dg.TableColumn("reason", "string"),
        ]
    )
    context.log.info(f"analysed {len(reports)} files: {dict(verdicts)}")
    return dg.MaterializeResult(
        metadata={
            "files": len(reports),
            "identified": verdicts.get("identified", 0),
            "verdicts": dict(verdicts),
            "reports": dg.MetadataValue.table(rows, schema=schema),
        }
    )
