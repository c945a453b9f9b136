"""`python -m djobs` runs the command line."""

from djobs.cli import main

if __name__ == "__main__":
    main()
