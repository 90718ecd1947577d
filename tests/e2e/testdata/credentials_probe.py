"""A container asset's code looking for S3 credentials (test_controller_container.sh).

It tries what the AWS credential chain tries: the variables, the web identity
(IRSA), EKS Pod Identity and service account token files, the shared
credentials file; then it reads PROBE_URI (an upstream COG) through GDAL's
/vsis3/. It writes what it found to $TERRANE_OUTPUT_DIR/probe.json and exits 0
either way: the test decides.
"""
import json
import os

from osgeo import gdal

VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
             "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
             "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_SHARED_CREDENTIALS_FILE")
FILES = ["/var/run/secrets/kubernetes.io/serviceaccount/token",
         "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
         "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
         os.path.expanduser("~/.aws/credentials")]
for v in ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
          "AWS_SHARED_CREDENTIALS_FILE"):
    if os.environ.get(v):
        FILES.append(os.environ[v])

report = {"variables": sorted(v for v in VARIABLES if os.environ.get(v)), "files": {}}
for path in FILES:
    try:
        with open(path, "rb") as f:
            f.read(1)
        report["files"][path] = None  # readable
    except OSError as e:
        report["files"][path] = e.strerror

gdal.UseExceptions()
gdal.SetConfigOption("CPL_AWS_AUTODETECT_EC2", "NO")  # no instance metadata here
try:
    ds = gdal.Open(os.environ["PROBE_URI"])
    report["s3"] = {"read": ds is not None, "error": ""}
except RuntimeError as e:
    report["s3"] = {"read": False, "error": str(e)}
report["input"] = gdal.Open(os.environ["TERRANE_INPUT_SLOPE"]) is not None

with open(os.path.join(os.environ["TERRANE_OUTPUT_DIR"], "probe.json"), "w") as f:
    json.dump(report, f)
