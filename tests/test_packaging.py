"""[hardening] Installable beside other packages: setup.cfg has compatible ranges, the exact tested set lives in
constraints.txt, and `make install` installs with it."""
import configparser
import re
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent


def requirements(section: str, key: str) -> list[Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return [Requirement(line) for line in cfg[section][key].strip().splitlines() if line.strip()]


def constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def all_requirements() -> list[Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    extras = [Requirement(line) for value in cfg["options.extras_require"].values()
              for line in value.strip().splitlines() if line.strip()]
    return requirements("options", "install_requires") + extras


def test_install_requires_are_ranges_not_pins():
    for req in all_requirements():
        operators = {spec.operator for spec in req.specifier}
        assert operators, f"{req} has no version bound"
        assert not operators & {"==", "==="}, f"{req} is an exact pin; pins belong in constraints.txt"
        assert operators & {">=", "~="}, f"{req} has no lower bound"


def test_the_constraints_pin_every_requirement_inside_its_range():
    pins = constraints()
    for req in all_requirements():
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} is outside {req}"
    assert pins["torch"] == "2.13.0"  # any other torch is a multi-GB CUDA build on the project's machines


def test_make_install_uses_the_constraints_file():
    makefile = (REPO / "Makefile").read_text()
    assert "-c $(CONSTRAINTS)" in makefile and "CONSTRAINTS := constraints.txt" in makefile
    install_lines = [line for line in makefile.splitlines() if "pip install" in line or "$(PIP)" in line]
    assert install_lines and all("$(PIP)" in line or "-c $(CONSTRAINTS)" in line for line in install_lines)
