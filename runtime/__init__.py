"""What the engine needs from Prefect at run time: blocks, Secret blocks, run history, events, the local API.

The engine (`shipshape/`) never imports Prefect; this layer is the one place below the tasks that does.
"""
