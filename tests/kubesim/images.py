"""Images as local commands: what a container runs when its spec has no command.

A real kubelet pulls the image and runs its ENTRYPOINT and CMD; kubesim has no
container runtime, so an images file (`kubesim.py --images FILE`, JSON) says
what each image is on this machine:

    {"images": {
       "terrane-ml-example": {
         "entrypoint": ["python3", "./train.py"],
         "cmd": [],
         "workingDir": ".",
         "env": {"PYTHONDONTWRITEBYTECODE": "1"},
         "imageID": "sha256:<64 hex>"}}}

Keys are image references; a container's image matches its exact reference
first, then its repository without tag or digest. Words and the working
directory starting with "./" (or being ".") are relative to the images file.
argv follows Kubernetes: command replaces the entrypoint, args replace cmd
(`command` given without `args` drops cmd). imageID is what the container
status reports (`<repository>@sha256:...`); without one it is derived from the
entry, so a changed entry reports a new digest as a rebuilt image would.
"""

import hashlib
import json
import os


def repository(ref):
    """registry/name of a reference, without :tag or @digest."""
    ref = ref.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    return ref[:colon] if colon > slash else ref


class Images:
    def __init__(self, path=None):
        self.entries = {}
        self.base = os.getcwd()
        if path:
            with open(path) as f:
                doc = json.load(f)
            if not isinstance(doc, dict) or not isinstance(doc.get("images"), dict):
                raise ValueError('an images file is {"images": {REFERENCE: {...}}}')
            self.base = os.path.dirname(os.path.abspath(path))
            for ref, e in doc["images"].items():
                if not isinstance(e, dict):
                    raise ValueError("images[%s]: must be an object" % ref)
                for k in ("entrypoint", "cmd"):
                    if not isinstance(e.get(k, []), list):
                        raise ValueError("images[%s].%s: must be a list" % (ref, k))
                self.entries[ref] = e

    def find(self, ref):
        if not ref:
            return None
        return self.entries.get(ref) or self.entries.get(repository(ref))

    def _local(self, word):
        word = str(word)
        if word == ".":
            return self.base
        if word.startswith("./"):
            return os.path.join(self.base, word[2:])
        return word

    def argv(self, spec):
        """(argv, workingDir or None, image env) for a container spec; argv is
        empty when neither the spec nor a known image gives one."""
        e = self.find(spec.get("image", "")) or {}
        command, args = spec.get("command"), spec.get("args")
        if command:
            argv = list(command) + list(args or [])
        else:
            argv = [self._local(w) for w in e.get("entrypoint", [])]
            argv += list(args) if args else [self._local(w) for w in e.get("cmd", [])]
        wd = e.get("workingDir")
        return argv, (self._local(wd) if wd else None), dict(e.get("env") or {})

    def image_id(self, ref):
        e = self.find(ref)
        if e is None:
            return ""
        digest = e.get("imageID")
        if not digest:
            digest = "sha256:" + hashlib.sha256(json.dumps(e, sort_keys=True).encode()).hexdigest()
        return "%s@%s" % (repository(ref), digest)
