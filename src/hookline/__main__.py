"""``python -m hookline``: the ``hookline`` command."""

from hookline.cli import main

main()
