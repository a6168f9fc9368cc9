"""`python -m cli …` runs the `shipshape` command (the console script's entry point is `cli.main:console`)."""

from cli.main import console

console()
