"""The bundled example: a generated shop application and the demo that runs the example pipeline on it."""
