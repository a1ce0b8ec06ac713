"""Data: sources (one module per on-disk layout), splits and D_mem, images, the HDF5 cache
(cache_build builds it, cache reads it), the built-in dataset."""
