"""What a run resolves from its Prefect API at run time: the warehouse block, and the run history SLOs count.

The engine (`shipshape/`) never imports Prefect; this layer is the one place below the tasks that does.
"""
