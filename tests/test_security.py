"""No file a user hands nasx can run code: a scan of nasx's own source for the unsafe ways to read one.

The behaviour is tested where each reader lives: a malicious checkpoint (test_damaged_files.py), a
poisoned CIFAR-10 batch (test_data.py, the restricted unpickler), python tags in YAML
(test_config_files.py, test_validation.py). This test keeps an unsafe call from creeping back in.
"""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import ROOT

SOURCES = sorted((ROOT / "nasx").rglob("*.py"))


def _name(node: ast.expr) -> str:
    """``a.b.c`` for a (possibly dotted) name, else ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _name(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _keyword(call: ast.Call, name: str) -> object:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "<expr>"
    return None


def _loader(call: ast.Call) -> str:
    return next((_name(kw.value) for kw in call.keywords if kw.arg == "Loader"), "")


def unsafe_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = {_name(b) for b in node.bases}
            if "pickle.Unpickler" in bases and node.name != "RestrictedUnpickler":
                found.append(
                    f"{path.parent.name}/{path.name}:{node.lineno}: an Unpickler other than the restricted one ({node.name})"
                )
        if not isinstance(node, ast.Call):
            continue
        name, where = _name(node.func), f"{path.parent.name}/{path.name}:{node.lineno}"
        if name in ("eval", "exec", "compile", "__import__"):
            found.append(f"{where}: {name}()")
        elif name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all"):
            found.append(f"{where}: {name}() (use yaml.safe_load)")
        elif name in ("yaml.compose", "yaml.compose_all") and _loader(node) != "yaml.SafeLoader":
            found.append(f"{where}: {name}() without Loader=yaml.SafeLoader")
        elif name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "marshal.loads", "shelve.open", "dill.load"):
            found.append(f"{where}: {name}()")
        elif name == "torch.load" and _keyword(node, "weights_only") is not True:
            found.append(f"{where}: torch.load() without weights_only=True")
        elif name in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") is not False:
            found.append(f"{where}: np.load() without allow_pickle=False")
        elif name.endswith(("subprocess.run", "subprocess.Popen", "os.system", "os.popen")):
            found.append(f"{where}: {name}()")
    return found


def test_nasx_reads_no_file_in_a_way_that_can_run_code() -> None:
    assert len(SOURCES) > 30
    problems = [p for path in SOURCES for p in unsafe_calls(path)]
    assert problems == []


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import yaml, torch, pickle, numpy as np\n"
        "yaml.load(t)\n"
        "torch.load(p)\n"
        "torch.load(p, weights_only=False)\n"
        "pickle.loads(b)\n"
        "np.load(f, allow_pickle=True)\n"
        "eval(s)\n"
        "class U(pickle.Unpickler): pass\n"
        "torch.load(p, map_location='cpu', weights_only=True)\n"  # the safe spellings are not reported
        "yaml.safe_load(t)\n"
        "yaml.compose(t, Loader=yaml.SafeLoader)\n"
        "np.load(f, allow_pickle=False)\n"
    )
    found = unsafe_calls(bad)
    assert len(found) == 7, found
