"""Ray job: generate the AMSR-E / ERA-Interim twin archive.

Example::

    ray job submit --working-dir . -- python -m pipelines.synth --out s3://bucket/twin --days 35
"""

import sys

from smray.cli import main

if __name__ == "__main__":
    sys.exit(main(["synth", *sys.argv[1:]]))
