"""The pinned environment: environment.yml and requirements.txt carry the same versions."""

import re

import yaml

from alliance.settings import PROJECT_DIR


def pip_pins() -> dict[str, str]:
    pins = {}
    for line in (PROJECT_DIR / "requirements.txt").read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_conda_pins_equal_pip_pins():
    environment = yaml.safe_load((PROJECT_DIR / "environment.yml").read_text())
    pins = pip_pins()
    conda = [d for d in environment["dependencies"] if isinstance(d, str) and "=" in d]
    assert len(conda) > 20
    for dependency in conda:
        name, version = dependency.split("=", 1)
        if name == "python":
            assert version == "3.12"
            continue
        assert pins.get(name) == version, f"{name}: conda {version}, pip {pins.get(name)}"


def test_core_stack_is_pinned():
    pins = pip_pins()
    for package in ("pymc", "bambi", "arviz", "nutpie", "pytensor", "snakemake", "h5netcdf"):
        assert package in pins
    assert int(pins["arviz"].split(".")[0]) >= 1
    assert (PROJECT_DIR / ".python-version").read_text().strip().startswith("3.12")
