"""``python -m megaclassifier``."""

from megaclassifier.cli import main

if __name__ == "__main__":
    main()
