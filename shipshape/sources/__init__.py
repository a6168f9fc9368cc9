"""Source kinds: each module holds one kind's declaration model and its reader; `registry.py` lists the kinds."""
