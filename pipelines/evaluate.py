"""Ray job: score map stores against the cube (and the twin's truth, ISMN stations) into a report.

Example::

    ray job submit --working-dir . -- python -m pipelines.evaluate \\
        --maps s3://bucket/maps/cnn.zarr --maps s3://bucket/maps/svr.zarr --cube s3://bucket/cube.zarr \\
        --truth s3://bucket/twin --out s3://bucket/report --config smray/configs/demo.yaml

Writes ``--out``/metrics.json, report.md and the PNG figures beside it.
"""

import sys

from smray.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
