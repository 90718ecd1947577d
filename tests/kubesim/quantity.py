"""Kubernetes resource quantities (resource.Quantity) as plain numbers.

Binary suffixes Ki Mi Gi Ti Pi Ei, decimal suffixes n u m k M G T P E, and
exponents (1e3). CPU is compared in millicores by callers; everything here is a
float in base units.
"""

import re

_SUFFIX = {
    "": 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "P": 1e15, "E": 1e18,
    "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60,
}
_RE = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")


def parse(q):
    """Quantity string (or number) to a float; raises ValueError when malformed."""
    if isinstance(q, bool):
        raise ValueError("quantity must be a string or number")
    if isinstance(q, (int, float)):
        return float(q)
    if not isinstance(q, str):
        raise ValueError("quantity must be a string or number")
    m = _RE.match(q.strip())
    if not m:
        raise ValueError("quantities must match the regular expression "
                         "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    num = float(m.group(1))
    if m.group(2):
        return num * (10 ** int(m.group(2)[1:]))
    return num * _SUFFIX[m.group(3) or ""]


def parse_or(q, default=0.0):
    try:
        return parse(q)
    except ValueError:
        return default


def fmt_bytes(n):
    for suf, mul in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if n >= mul and n % mul == 0:
            return "%d%s" % (n // mul, suf)
    return str(int(n))
