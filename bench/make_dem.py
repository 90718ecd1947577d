#!/usr/bin/python3
"""Writes a deterministic synthetic DEM for the benchmarks.

    make_dem.py SIZE OUT.tif

A SIZE x SIZE Float32 GeoTIFF (tiled 512x512, uncompressed, EPSG:32632,
10 m pixels): a sum of sines at several wavelengths (hills and valleys, so
slope and hillshade have work to do) plus small pseudo-random noise from an
integer hash of the pixel position. Nothing depends on a random-number
library's stream or on the machine, so the same SIZE gives the same file
everywhere. Rows are written in bands of 512 so memory stays small at any
SIZE. A value of -9999 is declared nodata and used in one corner block, so
the nodata paths run too.
"""
import sys

import numpy as np
from osgeo import gdal, osr

BAND_ROWS = 512


def noise(x, y):
    # A 32-bit integer hash (xorshift-multiply) of the position in [0, 1).
    h = (x.astype(np.uint32) * np.uint32(0x9E3779B1)) ^ (y.astype(np.uint32) * np.uint32(0x85EBCA77))
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    return (h & np.uint32(0xFFFFFF)).astype(np.float64) / float(0x1000000)


def main():
    size, out = int(sys.argv[1]), sys.argv[2]
    drv = gdal.GetDriverByName("GTiff")
    ds = drv.Create(out, size, size, 1, gdal.GDT_Float32,
                    ["TILED=YES", "BLOCKXSIZE=512", "BLOCKYSIZE=512", "BIGTIFF=IF_SAFER"])
    ds.SetGeoTransform((300000.0, 10.0, 0.0, 5600000.0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32632)
    ds.SetProjection(srs.ExportToWkt())
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(-9999)
    xs = np.arange(size, dtype=np.float64)
    for y0 in range(0, size, BAND_ROWS):
        rows = min(BAND_ROWS, size - y0)
        y = np.arange(y0, y0 + rows, dtype=np.float64)[:, None]
        x = xs[None, :]
        z = 800.0
        for i, wl in enumerate((4096.0, 1500.0, 600.0, 170.0, 45.0)):
            amp = 300.0 / (i + 1) ** 1.5
            z = z + amp * np.sin(2 * np.pi * (x / wl + 0.13 * i)) * np.cos(2 * np.pi * (y / (wl * 1.3) + 0.07 * i))
        z = z + 2.0 * noise(np.broadcast_to(x, (rows, size)), np.broadcast_to(y, (rows, size)))
        z = z.astype(np.float32)
        if y0 == 0:
            z[:64, :64] = -9999.0
        band.WriteArray(z, 0, y0)
    band.FlushCache()
    ds = None


if __name__ == "__main__":
    main()
