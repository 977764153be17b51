"""Pure image-analysis functions of BatchLib (no luigi, no h5py)."""
