"""`python3 -m training.quantize SRC --out DST`: an int8 copy of a pack (training/export/quantize.py)."""
from training.export.quantize import main

if __name__ == "__main__":
    main()
