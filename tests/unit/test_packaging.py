import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_package_and_the_bundled_data_ship_in_the_wheel():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(init.parent.relative_to(REPO).parts)
        for top in ("service", "replay")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert set(config["packages"]) == on_disk | {"service.bundled_data"}
    assert config["package-dir"] == {"service.bundled_data": "data"}
    assert config["package-data"]["service.bundled_data"] == ["housing.csv"]
