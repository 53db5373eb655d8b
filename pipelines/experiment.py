"""Ray job: the paper's experiment (train on 1-30 July 2011, test on 31 July, print Table 2).

Example::

    ray job submit --working-dir . -- python -m pipelines.experiment paper \\
        --cube s3://bucket/cube.zarr --twin s3://bucket/twin --out s3://bucket/experiments/paper \\
        --config smray/configs/demo.yaml

Finished models under ``--out`` are not retrained; submitting the same command again only re-scores.
"""

import sys

from smray.cli import main

if __name__ == "__main__":
    sys.exit(main(["experiment", *sys.argv[1:]]))
