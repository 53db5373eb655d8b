"""Ray job entrypoints: each module configures and pipes, the logic lives in :mod:`smray`."""
