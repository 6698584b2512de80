"""``python -m churnml``: the same CLI as the ``churnml`` command."""

from churnml.cli import main

if __name__ == "__main__":
    main()
