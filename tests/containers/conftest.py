"""The container suite runs only when asked for (`-m containers`, scripts/test.sh's own step, after
scripts/containers.sh): it builds on images and a podman set-up that the fast suite does not
make. Asked for without that set-up, it fails and says what to run."""

from __future__ import annotations

import shutil

import pytest
from podman import DIR, IMAGE, podman


def pytest_collection_modifyitems(config, items):
    if "containers" in (config.getoption("-m") or "") and "not containers" not in config.getoption("-m"):
        return
    skip = pytest.mark.skip(reason="container tests run in their own step: scripts/containers.sh, then pytest -m containers")
    for item in items:
        if "containers" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def containers_ready(request):
    if not any("containers" in item.keywords for item in request.session.items):
        return
    if shutil.which("podman") is None or not (DIR / "containers.conf").exists():
        pytest.fail("podman is not set up: run scripts/containers.sh first")
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        pytest.fail(f"{IMAGE} is missing: run scripts/containers.sh")
