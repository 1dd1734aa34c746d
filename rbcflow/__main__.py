"""``python -m rbcflow``: the same command line as the ``rbcflow`` script."""

from rbcflow.cli import run

if __name__ == "__main__":
    run()
