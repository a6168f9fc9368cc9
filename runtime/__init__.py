"""What the engine needs from Prefect at run time: the warehouse block, Secret blocks, run history, events.

The engine (`shipshape/`) never imports Prefect; this layer is the one place below the tasks that does.
"""
