"""The ``shenjing`` command: ``shenjing demo`` (more commands to come)."""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="shenjing", description="shenjing (神经): deep learning on NumPy, Keras API")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="train the seed CNN on the embedded MNIST sample (no network needed)",
                               description="Train the seed convolutional network on the MNIST sample shipped "
                                           "with shenjing (10,000 training and 2,000 test images) and print its "
                                           "test accuracy.")
    demo.add_argument("--epochs", type=int, default=5, help="training epochs (default 5)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    demo.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="progress output (default 1)")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "demo":
        from .demo import run_demo

        if args.epochs <= 0:
            parser.error("--epochs must be a positive integer")
        run_demo(epochs=args.epochs, seed=args.seed, verbose=args.verbose)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
