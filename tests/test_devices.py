"""Device profiles (harness/profiles/*.toml, your devices/*.toml): every shipped one loads, a bad one is a
one-line error. Torch-free (tomllib, or tomli before Python 3.11), so it runs in the Python 3.8 job too."""
import pytest

from harness.devices import REQUIRED, available, load_profile
from harness.errors import HarnessError


def test_every_shipped_profile_loads_with_the_required_fields():
    names = available()
    assert {"cpu", "cuda", "jetson", "rpi"} <= set(names)
    for name in names:
        profile = load_profile(name)
        assert all(k in profile for k in REQUIRED), name
        assert profile["name"] == name and profile["path"].endswith(f"{name}.toml")


def test_a_profile_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nbackend = "onnxruntime"\nprecision = "fp32"\nthreads = 2\n')
    profile = load_profile(str(path))
    assert (profile["name"], profile["threads"], profile["path"]) == ("mine", 2, str(path))


@pytest.mark.parametrize("text,message", [("name = = 1\n", "invalid TOML"),
                                          ('name = "x"\n', "profile lacks backend, precision")])
def test_a_bad_profile_is_a_one_line_error(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(HarnessError, match=message) as err:
        load_profile(str(path))
    assert "\n" not in str(err.value)


def test_an_unknown_device_names_the_available_ones():
    with pytest.raises(HarnessError, match=r"unknown device 'nosuch'.*available: .*rpi"):
        load_profile("nosuch")


def test_built_in_profiles_are_package_data_and_a_users_own_wins(tmp_path, monkeypatch):
    """An installed harness finds the built-in profiles inside the package; devices/<name>.toml of a
    checkout overrides one of the same name."""
    from pathlib import Path

    from harness import devices

    assert Path(load_profile("rpi")["path"]).parent.name == "profiles"
    pyproject = (Path(devices.__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"profiles/*.toml"' in pyproject  # shipped in the wheel
    mine = tmp_path / "devices"
    mine.mkdir()
    (mine / "rpi.toml").write_text('name = "rpi"\nbackend = "onnxruntime"\nprecision = "fp32"\nthreads = 2\n')
    monkeypatch.setattr(devices, "USER_DIR", mine)
    assert load_profile("rpi")["threads"] == 2 and load_profile("cpu")["path"].endswith("profiles/cpu.toml")


@pytest.mark.parametrize("profile,env,says", [
    ("rpi", {"machine": "x86_64", "cpu": "AMD EPYC", "board": None}, "describes a Raspberry Pi, but this host is x86_64"),
    ("jetson", {"machine": "x86_64", "cpu": "Intel Xeon"}, "describes a Jetson, but this host is x86_64"),
    ("rpi", {"machine": "aarch64", "board": "Jetson-AGX"}, "but this board is Jetson-AGX"),
    ("rpi", {"machine": "aarch64", "board": "Raspberry Pi 400 Rev 1.0"}, None),
    ("jetson", {"machine": "aarch64", "board": "Jetson-AGX", "l4t": "# R35 (release), REVISION: 2.1"}, None),
    ("rpi", {"machine": "x86_64", "emulated": "qemu-user ($HARNESS_EMULATED)"}, None),  # labelled as emulated
    ("cpu", {"machine": "x86_64"}, None),
])
def test_a_device_profile_on_another_host_is_said(profile, env, says):
    from harness.environment import not_the_device

    got = not_the_device(load_profile(profile), env)
    assert (got is None) if says is None else (says in got)
