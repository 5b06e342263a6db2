"""The key/value cache as both generator families' steps read it (model/ and upstream/): in
parts along the positions, each read where it lies. PyTorch only: nothing of training below it."""
