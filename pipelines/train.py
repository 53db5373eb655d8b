"""Ray job: train the retrieval model (CNN, pixel MLP or SVR) on the cube.

Example::

    ray job submit --working-dir . -- python -m pipelines.train \\
        --cube s3://bucket/cube.zarr --train-start 2011-07-01 --train-end 2011-07-28 \\
        --out s3://bucket/models/cnn --model cnn --workers 2 --config smray/configs/demo.yaml

Checkpoints go to ``--out``/ray_train; submitting the same command again resumes from the latest one.
"""

import sys

from smray.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
