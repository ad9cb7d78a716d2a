"""The network classes of the zoo (harness/models/nets/): defined at module level, so modules pickle by name
(and names pickled before the move, ``harness.models.esr.EdgeSRMax`` and so on, still load); imported only
when a network is built, so listing ids needs no PyTorch; without PyTorch, building raises ``import torch``'s
error. The parity of the networks themselves is in test_esr.py, test_bsrn.py, test_ghost.py, ..."""
from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import torch
except ImportError:  # no PyTorch here (a device venv): the tests marked `torch` skip, the others run
    torch = None

from harness.models import abpn, bicubic, bsrn, edsr, esr, fast, ghost, resolve

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "harness" / "models"
# one id per network class (Ghost-EDSR holds EDSR's classes and GhostConv2d)
IDS = ["eSR-MAX_s2_K3_C2", "eSR-TM_s2_K3_C2", "eSR-TR_s2_K3_C2", "eSR-CNN_s2_C2_D3_S6", "ESPCN_s2_D4_S6",
       "FSRCNN_s2_D6_S3_M1", "eSR-Bicubic_s2", "Bicubic_s2", "ABPN_s2", "BSRN_s2", "Ghost-EDSR_s2"]
# family module -> (its nets module, the names it still resolves)
ALIASES = {
    esr: ("esr", ("EdgeSRMax", "EdgeSRTM", "EdgeSRTR", "EdgeSRCNN", "ESPCN", "FSRCNN", "OfficialBicubic")),
    fast: ("fast", ("FastESRHead",)),
    edsr: ("edsr", ("ResBlock", "Upsampler", "EDSR", "NUM_FEAT", "NUM_BLOCK")),
    bsrn: ("bsrn", ("BSConvU", "CCALayer", "ESA", "ESDB", "UpsampleOneStep", "PixelShuffleDirect", "BSRN",
                    "NUM_FEAT", "NUM_BLOCK")),
    abpn: ("abpn", ("ABPN", "FEATURES", "BODY")),
    bicubic: ("bicubic", ("BicubicNet",)),
    ghost: ("ghost", ("GhostConv2d",)),
}

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True, timeout=300)


@pytest.mark.torch
@pytest.mark.parametrize("model_id", IDS)
def test_networks_pickle_by_name_and_under_their_old_names(model_id):
    """Every class of the network lives in harness.models.nets.<family>; the module pickles and comes back
    with the same output, and a pickle naming harness.models.<family>.<Class> (before the move) loads too."""
    model = resolve(model_id, 2)
    module = model.module
    classes = {type(m) for m in module.modules() if type(m).__module__.startswith("harness.")}
    assert classes and all(c.__module__.startswith("harness.models.nets.") for c in classes), classes
    assert all(c.__qualname__ == c.__name__ for c in classes)  # module level, no closure
    x = torch.rand(1, 3 if model.input_space == "rgb" else 1, 24, 24, generator=torch.Generator().manual_seed(0))
    old = pickle.dumps(module, protocol=0)  # protocol 0: the class references are plain text
    assert b"charness.models.nets." in old
    with torch.inference_mode():
        want = module(x)
        for data in (pickle.dumps(module), old.replace(b"charness.models.nets.", b"charness.models.")):
            back = pickle.loads(data)
            assert {type(m) for m in back.modules()} == {type(m) for m in module.modules()}
            assert torch.equal(back(x), want)


@pytest.mark.torch
def test_the_fast_head_pickles_by_name():
    net = esr.build_module("eSR-TR_s2_K3_C2")
    head = fast.fast_form(net)
    assert type(head).__module__ == "harness.models.nets.fast"
    old = pickle.dumps(head, protocol=0).replace(b"charness.models.nets.", b"charness.models.")
    x = torch.rand(1, 1, 9, 11, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(pickle.loads(old)(x), head(x))


def test_family_modules_resolve_the_network_names():
    """``harness.models.<family>.<Name>`` is ``harness.models.nets.<family>.<Name>`` (the aliases pickles rely on);
    other names still raise AttributeError."""
    import importlib

    for family, (nets_name, names) in ALIASES.items():
        nets = importlib.import_module(f"harness.models.nets.{nets_name}")
        for name in names:
            assert getattr(family, name) is getattr(nets, name), (family.__name__, name)
        with pytest.raises(AttributeError):
            family.NoSuchNetwork


def test_listing_ids_imports_no_network_module():
    """The zoo lists, parses and resolves classical models without importing torch or any network module."""
    res = _run("import sys\n"
               "from harness.models import all_ids, esr, ghost, resolve\n"
               "assert len(all_ids((2,))) > 300 and esr.parse('FSRCNN_s2_D6_S3_M1')[0] == 'FSRCNN'\n"
               "assert ghost.base_id('Ghost-EDSR_s2') == 'EDSR_s2' and ghost.offset(0) == (-1, -1)\n"
               "resolve('bicubic-matlab', 2)\n"
               "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')\n"
               "             or (m.startswith('harness.models.nets.') and m != 'harness.models.nets.ghost_shift')))\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_building_without_torch_raises_the_torch_import_error():
    """Where PyTorch is absent the network modules import (on torchless stand-ins) and building any network
    raises ImportError name 'torch' (the harness's 'needs PyTorch' advice), not an AttributeError."""
    res = _run("import sys\n"
               "sys.modules['torch'] = None\n"
               "from harness.models import esr, resolve\n"
               f"for model_id in {IDS!r}:\n"
               "    try:\n"
               "        resolve(model_id, 2)\n"
               "    except ImportError as exc:\n"
               "        print(model_id, exc.name)\n"
               "print(esr.EdgeSRMax.__module__)\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:-1] == [f"{i} torch" for i in IDS] + ["harness.models.nets.esr"]


def test_model_modules_stay_small():
    for path in [*MODELS.glob("*.py"), *(MODELS / "nets").glob("*.py")]:
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 500, path.name
