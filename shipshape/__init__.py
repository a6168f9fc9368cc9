"""shipshape: declared data pipelines with write-audit-publish, run on Prefect."""

__version__ = "0.1.0"
