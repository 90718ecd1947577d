#!/usr/bin/env bash
# Integration: a 10,000-object prefix is observed with bounded memory.
#
# 10,000 objects under one prefix of a real S3 server (s3rver: 10 pages of
# ListObjectsV2), and 1,000 under another. Both are observed; the peak RSS of
# the 10,000-object observation may exceed the 1,000-object one by at most
# 4 MiB (the listing streams through a digest and a scratch file, one page
# in memory at a time), the count and bytes are exact, the listing lists every
# key once in order, its SHA-256 is the data version, and the result fits the
# termination message. Wall time and RSS are printed (bench/bench_observe.sh
# measures them against GDAL's own listing).
. "$(dirname "$0")/../lib/common.sh"
[ -x /usr/bin/time ] || fail "/usr/bin/time missing (scripts/deps.sh installs it)"
s3_start raw assets

/usr/bin/python3 - <<'PY'
from concurrent.futures import ThreadPoolExecutor
from osgeo import gdal
def put(name):
    f = gdal.VSIFOpenL("/vsis3/raw/" + name, "wb")
    data = name.encode()
    gdal.VSIFWriteL(data, 1, len(data), f)
    assert gdal.VSIFCloseL(f) == 0, name
names = ["big/2026/%02d/obs_%05d.tif" % (i % 12, i) for i in range(10000)]
names += ["small/obs_%05d.tif" % i for i in range(1000)]
with ThreadPoolExecutor(4) as ex:
    list(ex.map(put, names))
PY

# observe NAME URI: runs under /usr/bin/time; sets RC, OUT, WALL (s), RSS (KiB).
observe() {
  printf '{"apiVersion":"terrane.io/v1","kind":"Task","namespace":"hydro","assetKey":"src/%s","dataVersion":"sha256:%064d","operation":"observe","inputs":[{"name":"source","uri":"%s"}],"output":{"uri":"s3://assets/sources"}}\n' \
    "$1" 0 "$2" >"$TMP/$1.task"
  OUT=$TMP/$1.out
  /usr/bin/time -f '%e %M' -o "$TMP/$1.time" "$WORKER" observe --task "$TMP/$1.task" \
    --termination-log "$TMP/$1.term" >"$OUT" 2>"$TMP/$1.err"
  RC=$?
  read -r WALL RSS <"$TMP/$1.time"
}
observe small s3://raw/small/
assert_eq 0 "$RC" "1,000 objects: exit 0"
RSS_SMALL=$RSS
observe big s3://raw/big/
assert_eq 0 "$RC" "10,000 objects: exit 0"
echo "terrane-worker observe s3://raw/big/ (10,000 objects): ${WALL} s wall, peak RSS $((RSS / 1024)) MiB ($RSS KiB); 1,000 objects: peak RSS $RSS_SMALL KiB"
assert_eq 10000 "$(json_get "$OUT" 'd["observation"]["objectCount"]')" "10,000 objects: counted exactly"
want_bytes=$(/usr/bin/python3 -c 'print(sum(len("big/2026/%02d/obs_%05d.tif" % (i % 12, i)) for i in range(10000)))')
assert_eq "$want_bytes" "$(json_get "$OUT" 'd["observation"]["bytes"]')" "10,000 objects: bytes exact"
[ "$(wc -c <"$TMP/big.term")" -le 4096 ] && ok "10,000 objects: the result is $(wc -c <"$TMP/big.term") bytes (<= 4096)" || fail "result over 4096 bytes"
[ "$RSS" -le $((RSS_SMALL + 4096)) ] && ok "bounded memory: peak RSS $RSS KiB for 10,000 objects vs $RSS_SMALL KiB for 1,000 (+ at most 4 MiB)" \
  || fail "memory grows with the object count: $RSS KiB for 10,000 vs $RSS_SMALL KiB for 1,000"
DV=$(json_get "$OUT" 'd["observation"]["dataVersion"]')
s3_get "$(json_get "$OUT" 'd["observation"]["listing"]')" "$TMP/big.jsonl"
assert_eq "${DV#sha256:}" "$(sha256sum <"$TMP/big.jsonl" | cut -d' ' -f1)" "10,000 objects: data version = sha256 of the listing"
/usr/bin/python3 -c 'import json,sys
keys=[json.loads(l)["key"] for l in open(sys.argv[1])]
want=sorted("big/2026/%02d/obs_%05d.tif" % (i % 12, i) for i in range(10000))
assert keys == want, (len(keys), keys[:3])' "$TMP/big.jsonl" && ok "10,000 objects: every key once, in key order" || fail "10,000 objects: listing wrong"
finish
