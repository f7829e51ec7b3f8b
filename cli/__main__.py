"""`python -m cli` is the `c2c` command."""

from cli import main

main()
