"""Ray job: build (or extend) the analysis-ready Zarr cube from the TB and reference archives.

Example::

    ray job submit --working-dir . -- python -m pipelines.ingest \\
        --tb s3://bucket/twin/amsr --ref s3://bucket/twin/era_interim \\
        --start 2011-07-01 --end 2011-07-31 --out s3://bucket/cube.zarr --config smray/configs/demo.yaml

A re-run skips finished days; a later ``--end`` appends days without rewriting earlier ones.
"""

import sys

from smray.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
