"""`nasx.space` is pure data: importing it and working with genotypes and design spaces pulls in neither torch nor optuna."""

from __future__ import annotations

import json

from helpers import run_python

_CODE = """
import json, sys
import nasx.space
from nasx.space import Network, load_network
from nasx import zoo
net = load_network(str(zoo.path("resnet20_cifar")))
again = Network.from_string(net.to_string())
assert again == Network.from_yaml(net.to_yaml()) == net
nasx.space.Network.from_dict({"stages": [{"block": {"kind": "residual"}, "depth": 1, "channels": 8}]}).shapes()
for name in nasx.space.space_names():  # design spaces sample, encode and size without optuna
    space = nasx.space.load_space(name)
    assert space.contains(space.random(0)) and space.size().points > 1 and space.params()
assert nasx.space.load_space("macro-cifar").select(nasx.space.load_space("macro-cifar").encode(net)) == net
print(json.dumps({"digest": net.digest, "heavy": sorted(m for m in ("torch", "optuna", "ray") if m in sys.modules)}))
"""


def test_space_imports_no_torch_and_no_optuna() -> None:
    proc = run_python("-c", _CODE)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["digest"] == "f65a5816b208"
