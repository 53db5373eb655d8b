"""Ray job: the experiments, ``paper`` (train on 1-30 July 2011, test on 31 July, print Table 2) and
``seasons`` (train on one year, score months of every season of another year).

Example::

    ray job submit --working-dir . -- python -m pipelines.experiment paper \\
        --cube s3://bucket/cube.zarr --twin s3://bucket/twin --out s3://bucket/experiments/paper \\
        --config smray/configs/demo.yaml

    ray job submit --working-dir . -- python -m pipelines.experiment seasons \
        --config smray/configs/seasons.yaml --root s3://bucket/seasons

Finished models are not retrained; submitting the same command again re-scores only what changed.
"""

import sys

from smray.cli import main

if __name__ == "__main__":
    sys.exit(main(["experiment", *sys.argv[1:]]))
