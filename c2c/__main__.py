"""`python -m c2c` is the `c2c` command."""

from c2c.cli import main

main()
