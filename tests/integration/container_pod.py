#!/usr/bin/env python3
"""Prints the pod of a container asset, in the shape proto/README.md
("Container assets") asks the controller to build, for the kubesim test.

    container_pod.py NAME TASK_FILE WORKER_ENV_JSON [--pool gpu] [--memory 64Mi]
                     [--command JSON] [--args JSON]

WORKER_ENV_JSON: the worker steps' extra env (S3 endpoint, credentials,
allowlists) as {"NAME": "value"}; the user's container never gets it.
"""

import argparse
import json
import re

TOLERATIONS = {"gpu": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}


def input_file(uri):
    """op_container.c container_input_file: the URI's last segment, else "data"."""
    seg = re.split(r"[?#]", uri)[0].rsplit("/", 1)[-1]
    ok = 1 <= len(seg) <= 128 and seg not in (".", "..") and re.fullmatch(r"[A-Za-z0-9._-]+", seg)
    return seg if ok else "data"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("task")
    ap.add_argument("worker_env")
    ap.add_argument("--pool", default="cpu")
    ap.add_argument("--memory", default="1Gi")
    ap.add_argument("--command")
    ap.add_argument("--args")
    a = ap.parse_args()
    task = json.load(open(a.task))
    p = task["params"]
    wenv = [{"name": "TERRANE_TASK", "value": json.dumps(task, separators=(",", ":"))}]
    wenv += [{"name": k, "value": v} for k, v in json.loads(a.worker_env).items()]
    uenv = list(p.get("env") or [])
    for i in task["inputs"]:
        uenv.append({"name": "TERRANE_INPUT_" + i["name"].upper(),
                     "value": "/inputs/%s/%s" % (i["name"], input_file(i["uri"]))})
    uenv += [{"name": "TERRANE_OUTPUT_DIR", "value": "/outputs"},
             {"name": "TERRANE_ASSET_KEY", "value": task["assetKey"]},
             {"name": "TERRANE_DATA_VERSION", "value": task["dataVersion"]}]
    res = {"requests": {"cpu": "1", "memory": a.memory}, "limits": {"memory": a.memory}}
    if a.pool == "gpu":
        res["limits"]["nvidia.com/gpu"] = "1"
        res["requests"]["nvidia.com/gpu"] = "1"
    user = {"name": "user", "image": p["image"], "env": uenv, "resources": res,
            "volumeMounts": [{"name": "inputs", "mountPath": "/inputs", "readOnly": True},
                             {"name": "outputs", "mountPath": "/outputs"}],
            "terminationMessagePolicy": "FallbackToLogsOnError"}
    command = json.loads(a.command) if a.command else p.get("command")
    args = json.loads(a.args) if a.args else p.get("args")
    if command:
        user["command"] = command
    if args:
        user["args"] = args
    if p.get("workingDir"):
        user["workingDir"] = p["workingDir"]

    def step(name, command, env, volume):
        """A worker step: the task, the worker env, its volume and scratch."""
        env = dict(env, TERRANE_SCRATCH_DIR="/scratch")
        return {"name": name, "image": "terrane-worker:0.1.0",
                "command": ["terrane-worker", command],
                "env": wenv + [{"name": k, "value": v} for k, v in env.items()],
                "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                              "limits": {"memory": "512Mi"}},
                "volumeMounts": [{"name": volume, "mountPath": "/" + volume},
                                 {"name": "scratch", "mountPath": "/scratch"}]}

    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": a.name, "labels": {"terrane.io/materialization": a.name,
                                                "terrane.io/pool": a.pool}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "nodeSelector": {"terrane.io/pool": a.pool},
            "tolerations": TOLERATIONS.get(a.pool, []),
            "volumes": [{"name": "inputs", "emptyDir": {}}, {"name": "outputs", "emptyDir": {}},
                        {"name": "scratch", "emptyDir": {}}],
            "initContainers": [
                step("fetch", "fetch", {"TERRANE_INPUTS_DIR": "/inputs"}, "inputs"), user],
            "containers": [
                step("worker", "publish-outputs", {"TERRANE_OUTPUT_DIR": "/outputs"}, "outputs")],
        },
    }
    print(json.dumps(pod, indent=1))


if __name__ == "__main__":
    main()
