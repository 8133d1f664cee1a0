"""Raster input/output shared by datasets, prediction writers and streaming tiled inference.

The GeoTIFF rules (output dtypes, nodata values, safe casting, windowed reads and writes, georeferenced
profiles) live in :mod:`terratorch.io.geotiff`. This package imports nothing heavy: rasterio and numpy
load when :mod:`terratorch.io.geotiff` is imported.
"""
