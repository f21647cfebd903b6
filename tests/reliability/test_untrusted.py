"""Untrusted data: nothing on the decode path can unpickle, and checkpoints load with ``weights_only=True``.

* At run time: ``hinerv decode`` and ``hinerv info`` run in a process where every unpickling entry point
  (pickle, _pickle, torch.load, numpy.load, and the ``pickle.find_class`` audit event that any unpickler
  raises for a global) fails loudly; they must still succeed.
* Statically: no module that decoding needs (the import closure of ``codec.decoder``) imports an unpickler
  or calls one, and every ``torch.load`` in the project passes ``weights_only=True``.
* A checkpoint crafted to run code when unpickled is refused by ``--resume`` without running it.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import fuzz_targets as ft
import pytest
import torch

from codec.checkpoint import Checkpoint, checkpoint_path
from codec.encoder import EncodeOptions, encode

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("codec", "bitstream", "inr", "compress", "eval")
UNPICKLING_MODULES = {"pickle", "_pickle", "cPickle", "dill", "joblib", "shelve", "marshal", "cloudpickle"}

DECODE_GUARDED = textwrap.dedent("""
    import json, pickle, _pickle, sys
    import numpy, torch
    import codec.decoder, codec.bitstream_io  # the decode path: what decoding a file needs, nothing else
    decode_path = sorted({m.__file__ for name, m in list(sys.modules.items())
                          if name.split(".")[0] in %r and getattr(m, "__file__", None)})
    from codec.cli import main

    calls = []
    def refuse(name):
        def fn(*args, **kwargs):
            calls.append(name)
            raise AssertionError(name + " called on the decode path")
        return fn
    for mod, names in ((pickle, ("load", "loads", "Unpickler")), (_pickle, ("load", "loads", "Unpickler")),
                       (torch, ("load",)), (numpy, ("load",))):
        for name in names:
            setattr(mod, name, refuse(mod.__name__ + "." + name))
    def audit(event, args):
        if event == "pickle.find_class":
            calls.append(event + " " + repr(args))
            raise AssertionError("unpickling a global on the decode path: " + repr(args))
    sys.addaudithook(audit)

    codes = []
    for argv in (["decode", sys.argv[1], sys.argv[2], "-q"], ["info", sys.argv[1]]):
        try:
            main(argv)
        except SystemExit as e:
            codes.append(e.code)
    print(json.dumps({"codes": codes, "calls": calls, "modules": decode_path}))
""" % (PACKAGES,))


@pytest.fixture(scope="module")
def guarded_decode(tmp_path_factory):
    folder = tmp_path_factory.mktemp("untrusted")
    source = folder / "in.bin"
    source.write_bytes(ft.bitstream_seeds()[0])
    run = subprocess.run([sys.executable, "-c", DECODE_GUARDED, str(source), str(folder / "out.y4m")], cwd=ROOT,
                         env=os.environ | {"OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    result["output"] = folder / "out.y4m"
    return result


def test_decode_and_info_never_unpickle(guarded_decode):
    assert guarded_decode["calls"] == []
    assert guarded_decode["codes"] in ([0, 0], [None, None])  # click exits 0 after a command
    assert guarded_decode["output"].stat().st_size > 0


def unpickling_uses(source: str) -> list[str]:
    """Imports of unpickling modules and calls of torch.load / numpy.load / pickle.load(s) / eval / exec."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in UNPICKLING_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNPICKLING_MODULES:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.ImportFrom) and node.module in ("torch", "numpy") and \
                any(a.name == "load" for a in node.names):
            found.append(f"from {node.module} import load")
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr in ("load", "loads", "Unpickler") and \
                    isinstance(f.value, ast.Name) and f.value.id in ("torch", "np", "numpy", "pickle"):
                found.append(f"{f.value.id}.{f.attr}(...) at line {node.lineno}")
            elif isinstance(f, ast.Name) and f.id in ("eval", "exec"):
                found.append(f"{f.id}(...) at line {node.lineno}")
    return found


def test_the_scanner_finds_what_it_looks_for():
    snippet = "import pickle\nfrom dill import loads\nx = torch.load(p)\ny = np.load(p, allow_pickle=True)\n" \
              "eval('1')\nmodel.eval()\n"
    assert len(unpickling_uses(snippet)) == 5  # model.eval() is not eval


def test_modules_on_the_decode_path_cannot_unpickle(guarded_decode):
    modules = {os.path.relpath(m, ROOT): Path(m) for m in guarded_decode["modules"]}
    assert {"codec/decoder.py", "codec/bitstream_io.py", "bitstream/tensors.py", "inr/model.py"} <= set(modules)
    offenders = {name: uses for name, path in modules.items() if (uses := unpickling_uses(path.read_text()))}
    assert offenders == {}, offenders


def test_every_torch_load_in_the_project_is_weights_only():
    calls = []
    for package in PACKAGES + ("tools",):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                        node.func.attr == "load" and isinstance(node.func.value, ast.Name) and \
                        node.func.value.id == "torch":
                    kw = {k.arg: k.value for k in node.keywords}
                    safe = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                    calls.append((f"{path.relative_to(ROOT)}:{node.lineno}", safe))
    assert calls, "expected the checkpoint loader's torch.load"
    assert all(safe for _, safe in calls), calls


class _RunsCode:
    """Unpickling this (without weights_only) creates a file: proof that a payload would have run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_malicious_checkpoint_is_refused_without_running(tiny_clip, tmp_path):
    out = tmp_path / "out.bin"
    marker = tmp_path / "pwned"
    torch.save({"fingerprint": "x", "stage": 0, "epoch": 1, "model": _RunsCode(marker), "optimizer": {},
                "elapsed": 0.0}, checkpoint_path(out))
    with pytest.raises(ValueError, match="unreadable"):
        Checkpoint.load(checkpoint_path(out))
    options = EncodeOptions(preset="xxs", epochs=1, prune_epochs=0, qat_epochs=1)
    with pytest.raises(ValueError, match="unreadable"):
        encode(tiny_clip, out, options, resume=True, progress=False, log=lambda *_: None)
    assert not marker.exists() and not out.exists()
    # The payload is live: a plain torch.load runs it. So the refusal above is weights_only at work.
    torch.load(checkpoint_path(out), weights_only=False)["model"].close()
    assert marker.exists()
