"""``python -m datamarkets.cli`` runs the command line."""

from datamarkets.cli.application import main

if __name__ == "__main__":  # pragma: no cover
    main()
