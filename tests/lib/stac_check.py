#!/usr/bin/env python3
"""Checks a STAC Item against the versions Terrane declares, field by field.

    stac_check.py ITEM.json    prints each problem, exits 1 if there is one

The official JSON Schemas of STAC and its extensions are published only on
the web (schemas.stacspec.org, stac-extensions.github.io); no Debian or npm
package ships them (npm's stac-node-validator downloads them when it runs),
so the tests cannot use them offline. This checker states, one by one, what
those schemas require of an Item:

  STAC 1.0.0 Item: type "Feature", stac_version, stac_extensions (array of
    URIs), id, geometry (GeoJSON geometry or null) with bbox (4 or 6 numbers)
    unless null, properties with datetime (RFC 3339) or start_datetime and
    end_datetime, links (each with rel and href), assets (each with href).
  projection v2.0.0: proj:code (string AUTHORITY:CODE, or null), proj:wkt2
    (string or null), proj:projjson (object or null), proj:bbox (4 or 6
    numbers), proj:shape (2 integers), proj:transform (6 or 9 numbers),
    proj:centroid, proj:geometry; no other proj: field (v1's proj:epsg is
    gone).
  file v2.1.0: file:checksum (hex multihash), file:size (integer >= 0),
    file:header_size, file:byte_order, file:values, file:local_path; no other
    file: field.
  processing v1.2.0: at least one of processing:expression, :lineage, :level,
    :facility, :software (object of strings), :version, :datetime (RFC 3339);
    no other processing: field.
  raster v1.1.0: raster:bands, an array of band objects with nodata (number
    or "nan", "inf", "-inf"), sampling (area, point), data_type (int8 ...
    float64, cint16 ... cfloat64, other), bits_per_sample, spatial_resolution,
    statistics, unit, scale, offset, histogram.
  Each extension's URI is in stac_extensions exactly when its fields are used.
"""

import json
import re
import sys

STAC_VERSIONS = ("1.0.0", "1.1.0")
EXT = {
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "file": "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "processing": "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
}
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
DATA_TYPES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16",
              "float32", "float64", "cint16", "cint32", "cfloat32", "cfloat64", "other"}


def num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(v):
    return isinstance(v, int) and not isinstance(v, bool)


def nums(v, *sizes):
    return isinstance(v, list) and len(v) in sizes and all(num(x) for x in v)


PROJ = {
    "proj:code": lambda v: v is None or (isinstance(v, str) and re.match(r"^[A-Za-z0-9_.-]+:[^\s]+$", v)),
    "proj:wkt2": lambda v: v is None or isinstance(v, str),
    "proj:projjson": lambda v: v is None or isinstance(v, dict),
    "proj:geometry": lambda v: isinstance(v, dict) and "type" in v,
    "proj:bbox": lambda v: nums(v, 4, 6),
    "proj:centroid": lambda v: isinstance(v, dict) and num(v.get("lat")) and num(v.get("lon")),
    "proj:shape": lambda v: isinstance(v, list) and len(v) == 2 and all(integer(x) for x in v),
    "proj:transform": lambda v: nums(v, 6, 9),
}
FILE = {
    "file:checksum": lambda v: isinstance(v, str) and re.match(r"^[a-f0-9]+$", v),
    "file:size": lambda v: integer(v) and v >= 0,
    "file:header_size": lambda v: integer(v) and v >= 0,
    "file:byte_order": lambda v: v in ("big-endian", "little-endian"),
    "file:values": lambda v: isinstance(v, list) and len(v) >= 1,
    "file:local_path": lambda v: isinstance(v, str),
}
PROCESSING = {
    "processing:expression": lambda v: isinstance(v, dict) and "format" in v and "expression" in v,
    "processing:lineage": lambda v: isinstance(v, str),
    "processing:level": lambda v: isinstance(v, str),
    "processing:facility": lambda v: isinstance(v, str),
    "processing:version": lambda v: isinstance(v, str),
    "processing:datetime": lambda v: isinstance(v, str) and RFC3339.match(v),
    "processing:software": lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
}


def check_fields(where, o, prefix, fields, extension, errs):
    """The extension's fields of o; whether o uses any."""
    used = [k for k in o if k.startswith(prefix)]
    for k in used:
        ok = fields.get(k)
        if ok is None:
            errs.append("%s: %s is not a field of %s" % (where, k, extension))
        elif not ok(o[k]):
            errs.append("%s: %s is not valid: %s" % (where, k, json.dumps(o[k])[:120]))
    return bool(used)


def check_raster(where, o, errs):
    for k, v in o.items():
        if not k.startswith("raster:"):
            continue
        if k != "raster:bands":
            errs.append("%s: %s is not a field of raster v1.1.0" % (where, k))
            continue
        if not isinstance(v, list):
            errs.append("%s: raster:bands must be an array" % where)
            continue
        for i, b in enumerate(v):
            w = "%s raster:bands[%d]" % (where, i)
            if not isinstance(b, dict):
                errs.append("%s: not an object" % w)
                continue
            if "nodata" in b and not (num(b["nodata"]) or b["nodata"] in ("nan", "inf", "-inf")):
                errs.append("%s: nodata %r" % (w, b["nodata"]))
            if "sampling" in b and b["sampling"] not in ("area", "point"):
                errs.append("%s: sampling %r" % (w, b["sampling"]))
            if "data_type" in b and b["data_type"] not in DATA_TYPES:
                errs.append("%s: data_type %r" % (w, b["data_type"]))
            for f in ("bits_per_sample",):
                if f in b and not integer(b[f]):
                    errs.append("%s: %s %r" % (w, f, b[f]))
            for f in ("spatial_resolution", "scale", "offset"):
                if f in b and not num(b[f]):
                    errs.append("%s: %s %r" % (w, f, b[f]))
            if "statistics" in b and not (isinstance(b["statistics"], dict) and
                                          all(num(x) for x in b["statistics"].values())):
                errs.append("%s: statistics %r" % (w, b["statistics"]))


def check(item):
    errs = []
    if not isinstance(item, dict):
        return ["not an object"]
    if item.get("type") != "Feature":
        errs.append("type must be Feature")
    if item.get("stac_version") not in STAC_VERSIONS:
        errs.append("stac_version %r is not one of %s" % (item.get("stac_version"), STAC_VERSIONS))
    exts = item.get("stac_extensions")
    if not isinstance(exts, list) or not all(isinstance(e, str) for e in exts):
        errs.append("stac_extensions must be an array of URIs")
        exts = []
    if not isinstance(item.get("id"), str) or not item.get("id"):
        errs.append("id must be a non-empty string")
    g = item.get("geometry", "missing")
    if g == "missing":
        errs.append("geometry is required (null allowed)")
    elif g is not None:
        if not (isinstance(g, dict) and g.get("type") in ("Point", "MultiPoint", "LineString", "MultiLineString",
                                                           "Polygon", "MultiPolygon", "GeometryCollection")):
            errs.append("geometry is not a GeoJSON geometry")
        if not nums(item.get("bbox"), 4, 6):
            errs.append("bbox (4 or 6 numbers) is required with a geometry")
    props = item.get("properties")
    if not isinstance(props, dict):
        errs.append("properties must be an object")
        props = {}
    dt = props.get("datetime", "missing")
    if dt == "missing":
        errs.append("properties.datetime is required")
    elif dt is None:
        if not (isinstance(props.get("start_datetime"), str) and isinstance(props.get("end_datetime"), str)):
            errs.append("datetime null needs start_datetime and end_datetime")
    elif not (isinstance(dt, str) and RFC3339.match(dt)):
        errs.append("properties.datetime is not RFC 3339: %r" % dt)
    links = item.get("links")
    if not isinstance(links, list) or not all(isinstance(l, dict) and isinstance(l.get("rel"), str) and
                                              isinstance(l.get("href"), str) for l in links):
        errs.append("links must be an array of objects with rel and href")
    assets = item.get("assets")
    if not isinstance(assets, dict) or not all(isinstance(a, dict) and isinstance(a.get("href"), str)
                                               for a in assets.values()):
        errs.append("assets must map names to objects with href")
        assets = {}
    used = set()
    for where, o in [("properties", props)] + [("assets.%s" % k, a) for k, a in assets.items()]:
        check_fields(where, o, "proj:", PROJ, "projection v2.0.0", errs)
        check_fields(where, o, "file:", FILE, "file v2.1.0", errs)
        check_raster(where, o, errs)
        for prefix in ("proj", "file", "raster"):
            if any(k.startswith(prefix + ":") for k in o):
                used.add(prefix)
    if check_fields("properties", props, "processing:", PROCESSING, "processing v1.2.0", errs):
        used.add("processing")
    for prefix, uri in EXT.items():
        if prefix in used and uri not in exts:
            errs.append("%s: fields used but %s is not in stac_extensions" % (prefix, uri))
        if prefix not in used and uri in exts:
            errs.append("%s is declared but none of its fields is used" % uri)
    for e in exts:
        if e not in EXT.values():
            errs.append("stac_extensions: %s is not a version this checker knows" % e)
    return errs


def main(argv):
    with open(argv[1]) as fh:
        errs = check(json.load(fh))
    for e in errs:
        print("STAC: " + e)
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
