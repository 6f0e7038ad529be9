"""The Ray Data dataflow and its stages: schemas, lake, sink, policy packs, models, backfill,
sweep, audit, report rendering and online serving. Each stage has a small public API in its
own subpackage; the CLI in ``batchjobs`` only calls these."""
