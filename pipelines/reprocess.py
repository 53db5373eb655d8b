"""Ray job: the whole chain (twin →) ingest → train → predict → evaluate, resumable stage by stage
(``smray reprocess``; the same arguments, see ``smray reprocess --help`` and docs/reprocess.md).

Example (a local head started with ``ray start --head``)::

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python -m pipelines.reprocess --config cluster/configs/local.yaml
"""

import sys

from smray.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    return cli_main(["reprocess", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
