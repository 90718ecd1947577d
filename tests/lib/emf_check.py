#!/usr/bin/env python3
"""Validate CloudWatch Embedded Metric Format (EMF) log lines.

Checks each line against the structure the EMF specification requires:

  * the line is one JSON object with an "_aws" object member;
  * _aws.Timestamp is an integer number of milliseconds since the epoch;
  * _aws.CloudWatchMetrics is a non-empty array of metric directives, each with
    - Namespace: a string of 1-255 allowed characters, not starting with "AWS/";
    - Dimensions: an array of dimension sets, each an array of at most 30
      strings, every one naming a top-level member whose value is a string
      (1-1024 characters; names 1-255 characters);
    - Metrics: an array of at most 100 definitions, each an object with a
      Name (1-1024 characters) naming a top-level member whose value is a
      number or an array of at most 100 numbers, an optional Unit from the
      allowed list and an optional StorageResolution of 1 or 60;
  * no member is both a dimension and a metric, and object keys are unique.

Usage:
  emf_check.py [--mixed] [--min N] [--namespace NS] [--metric NAME]... [FILE]...

Reads FILEs (or stdin). Without --mixed every non-empty line must be an EMF
line; with --mixed, lines that are not JSON objects with "_aws" (ordinary
log lines) are skipped. --min N requires at least N EMF lines; --namespace
and --metric require every EMF line to use that namespace / declare those
metrics. Prints one message per problem ("FILE:LINE: ...") and a summary;
exits 0 when everything is valid, 1 otherwise.

As a module: errors(obj) returns the list of problems of one decoded line.
"""
import argparse
import json
import math
import re
import sys

UNITS = {
    "Seconds", "Microseconds", "Milliseconds",
    "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
    "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
    "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second",
    "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
}
MAX_DIMENSIONS = 30
MAX_METRICS = 100
MAX_VALUES = 100
NAMESPACE_RE = re.compile(r"^[0-9A-Za-z.\-_/#: ]{1,255}$")


class DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise DuplicateKey(f"duplicate key {k!r}")
        obj[k] = v
    return obj


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_string(v, lo=1, hi=1024):
    return isinstance(v, str) and lo <= len(v) <= hi


def errors(doc):
    """Problems of one decoded EMF document (an empty list when valid)."""
    errs = []
    if not isinstance(doc, dict):
        return ["not a JSON object"]
    aws = doc.get("_aws")
    if not isinstance(aws, dict):
        return ['"_aws" missing or not an object']
    ts = aws.get("Timestamp")
    if isinstance(ts, bool) or not isinstance(ts, int):
        errs.append("_aws.Timestamp must be an integer (milliseconds since the epoch), got %r" % (ts,))
    elif ts < 0:
        errs.append("_aws.Timestamp is negative")
    elif ts < 10**11:
        errs.append("_aws.Timestamp %d looks like seconds, not milliseconds" % ts)
    for key in ("LogGroupName", "LogStreamName"):
        if key in aws and not _is_string(aws[key], 1, 512):
            errs.append("_aws.%s must be a non-empty string" % key)
    directives = aws.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        errs.append("_aws.CloudWatchMetrics must be a non-empty array")
        return errs
    for i, d in enumerate(directives):
        where = "_aws.CloudWatchMetrics[%d]" % i
        if not isinstance(d, dict):
            errs.append(where + " is not an object")
            continue
        ns = d.get("Namespace")
        if not isinstance(ns, str) or not NAMESPACE_RE.match(ns):
            errs.append(where + ".Namespace must be a string of 1-255 allowed characters, got %r" % (ns,))
        elif ns.startswith("AWS/"):
            errs.append(where + '.Namespace must not start with "AWS/"')
        dims = d.get("Dimensions")
        dim_keys = set()
        if not isinstance(dims, list):
            errs.append(where + ".Dimensions must be an array of dimension sets")
        else:
            for j, dset in enumerate(dims):
                w = "%s.Dimensions[%d]" % (where, j)
                if not isinstance(dset, list):
                    errs.append(w + " must be an array of strings")
                    continue
                if len(dset) > MAX_DIMENSIONS:
                    errs.append(w + " has %d dimensions (at most %d)" % (len(dset), MAX_DIMENSIONS))
                for key in dset:
                    if not _is_string(key, 1, 255):
                        errs.append(w + " has a dimension name that is not a 1-255 character string: %r" % (key,))
                        continue
                    dim_keys.add(key)
                    if key not in doc:
                        errs.append(w + ": dimension %r has no top-level member" % key)
                    elif not _is_string(doc[key], 1, 1024):
                        errs.append(w + ": dimension %r must be a 1-1024 character string, got %r" % (key, doc[key]))
        metrics = d.get("Metrics")
        if not isinstance(metrics, list):
            errs.append(where + ".Metrics must be an array")
            continue
        if len(metrics) > MAX_METRICS:
            errs.append(where + ".Metrics has %d definitions (at most %d)" % (len(metrics), MAX_METRICS))
        names = set()
        for j, m in enumerate(metrics):
            w = "%s.Metrics[%d]" % (where, j)
            if not isinstance(m, dict):
                errs.append(w + " is not an object")
                continue
            name = m.get("Name")
            if not _is_string(name, 1, 1024):
                errs.append(w + ".Name must be a non-empty string")
                continue
            if name in names:
                errs.append(w + ": metric %r declared twice" % name)
            names.add(name)
            if "Unit" in m and m["Unit"] not in UNITS:
                errs.append(w + ": unit %r is not one of CloudWatch's units" % (m["Unit"],))
            if "StorageResolution" in m and (isinstance(m["StorageResolution"], bool) or
                                             m["StorageResolution"] not in (1, 60)):
                errs.append(w + ".StorageResolution must be 1 or 60")
            if name in dim_keys:
                errs.append(w + ": %r is both a dimension and a metric" % name)
            if name not in doc:
                errs.append(w + ": metric %r has no top-level value" % name)
                continue
            v = doc[name]
            if isinstance(v, list):
                if not v or len(v) > MAX_VALUES or not all(_is_number(x) for x in v):
                    errs.append(w + ": %r must be a number or an array of 1-%d numbers" % (name, MAX_VALUES))
            elif not _is_number(v):
                errs.append(w + ": %r must be a finite number, got %r" % (name, v))
    return errs


def main(argv=None):
    ap = argparse.ArgumentParser(description="Validate CloudWatch Embedded Metric Format lines.")
    ap.add_argument("files", nargs="*", help="files to read (default: stdin)")
    ap.add_argument("--mixed", action="store_true", help="skip lines that are not EMF (other log lines)")
    ap.add_argument("--min", type=int, default=1, help="at least this many EMF lines (default 1)")
    ap.add_argument("--namespace", help="every EMF line must use this namespace")
    ap.add_argument("--metric", action="append", default=[], help="every EMF line must declare this metric")
    args = ap.parse_args(argv)

    sources = [(f, open(f, encoding="utf-8", errors="replace")) for f in args.files] or [("<stdin>", sys.stdin)]
    problems = 0
    checked = 0
    for name, f in sources:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            try:
                doc = json.loads(line, object_pairs_hook=_no_duplicates)
            except (ValueError, DuplicateKey) as e:
                if args.mixed:
                    continue
                print("%s:%d: not a JSON document: %s" % (name, n, e))
                problems += 1
                continue
            if args.mixed and not (isinstance(doc, dict) and "_aws" in doc):
                continue
            checked += 1
            errs = errors(doc)
            if not errs and (args.namespace or args.metric):
                directives = doc["_aws"]["CloudWatchMetrics"]
                if args.namespace and not any(d.get("Namespace") == args.namespace for d in directives):
                    errs.append("namespace %r not used" % args.namespace)
                declared = {m.get("Name") for d in directives for m in d.get("Metrics", [])}
                errs += ["metric %r not declared" % m for m in args.metric if m not in declared]
            for e in errs:
                print("%s:%d: %s" % (name, n, e))
            problems += len(errs)
        if f is not sys.stdin:
            f.close()
    if checked < args.min:
        print("expected at least %d EMF line(s), found %d" % (args.min, checked))
        problems += 1
    print("emf_check: %d EMF line(s), %d problem(s)" % (checked, problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
