"""``python -m rbcflow``: the same command line as the ``rbcflow`` script."""

from rbcflow.cli import main

if __name__ == "__main__":
    main(prog_name="rbcflow")
