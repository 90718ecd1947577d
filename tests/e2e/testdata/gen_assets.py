"""gen_assets.py - creates N generated AssetMaterializations in one namespace
of kubesim, with statuses, for the UI's scale test (tests/e2e/test_ui_scale.sh).

  gen_assets.py KUBECONFIG NAMESPACE N

Assets come in groups of 100 under the asset-key prefix scale/gNNN/; inside a
group each asset reads the one before it, and the first of a group reads the
last of the group before, so the graph is connected across groups. Statuses
are written through the status subresource: most Succeeded, some Running,
Waiting, Failed, every 7th Stale. Prints the name of one asset.
One keep-alive connection per thread, four threads.
"""
import http.client, json, sys, threading

kubeconfig, ns, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
server = next(l.split(None, 1)[1].strip() for l in open(kubeconfig) if l.strip().startswith("server:"))
host, port = server.split("://", 1)[1].rstrip("/").rsplit(":", 1)
BASE = "/apis/terrane.io/v1alpha1/namespaces/%s/assetmaterializations" % ns
GROUP = 100


def name(i):
    return "a%05d" % i


def manifest(i):
    g, j = divmod(i, GROUP)
    inputs = [{"name": "in", "uri": "s3://raw/lux/elev.tif"}] if i == 0 else [{"name": "in", "from": name(i - 1)}]
    return {"apiVersion": "terrane.io/v1alpha1", "kind": "AssetMaterialization",
            "metadata": {"name": name(i), "namespace": ns},
            "spec": {"assetKey": "scale/g%03d/asset_%05d" % (g, i), "operation": "cog",
                     "params": {"compression": "DEFLATE"}, "inputs": inputs,
                     "output": {"uri": "s3://assets"}, "tags": {"terrane.io/pool": ["cpu", "highmem"][i % 2]}}}


def status(i, gen):
    phase = "Succeeded"
    if i % 10 == 3:
        phase = "Running"
    elif i % 20 == 7:
        phase = "Waiting"
    elif i % 20 == 17:
        phase = "Failed"
    conds = [{"type": "Ready", "status": "True" if phase == "Succeeded" else "False", "reason": phase,
              "message": "generated", "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": gen}]
    if i % 7 == 0:
        conds.append({"type": "Stale", "status": "True", "reason": "UpstreamChanged", "message": "generated",
                      "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": gen})
    return {"phase": phase, "observedGeneration": gen, "pool": ["cpu", "highmem"][i % 2],
            "dataVersion": "sha256:%064x" % i, "conditions": conds}


def work(ids, errors):
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    hdr = {"Content-Type": "application/json", "Accept": "application/json"}
    for i in ids:
        c.request("POST", BASE, json.dumps(manifest(i)), hdr)
        r = c.getresponse()
        body = json.loads(r.read())
        if r.status != 201:
            errors.append("create %s: %d %s" % (name(i), r.status, body.get("message")))
            return
        body["status"] = status(i, body["metadata"].get("generation", 1))
        c.request("PUT", BASE + "/" + name(i) + "/status", json.dumps(body), hdr)
        r = c.getresponse()
        r.read()
        if r.status != 200:
            errors.append("status %s: %d" % (name(i), r.status))
            return


errors = []
threads = [threading.Thread(target=work, args=(range(t, n, 4), errors)) for t in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    sys.exit("gen_assets: " + "; ".join(errors[:5]))
print(name(n // 2 + 37))
