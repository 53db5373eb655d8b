"""Ray job: predict daily soil-moisture maps into the map store with a trained model.

Example::

    ray job submit --working-dir . -- python -m pipelines.predict --config smray/configs/demo.yaml \\
        --cube s3://bucket/cube.zarr --model s3://bucket/models/cnn --start 2011-07-01 --end 2011-07-31 \\
        --out s3://bucket/maps/cnn.zarr

The config's ``paths`` section can supply the cube, model, store and days; the flags override it.
Submitting the same command again skips finished days; a later ``--end`` appends.
"""

import sys

from smray.cli import main

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]]))
