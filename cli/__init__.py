"""The `shipshape` command line: the top layer, allowed to call flows, the runtime and the engine."""
