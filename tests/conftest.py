"""Suite-wide: tests see Debian's Fashion-MNIST package only when they ask for real data.

`gradattn.data` falls back to /usr/share/datasets/fashion-mnist wherever it is installed (`make data`
installs it when it can), so tests that expect "absent" or fixture files would otherwise read the real
dataset on some machines and not on others. Tests marked `realdata` see the machine as it is.
"""
import pytest


@pytest.fixture(autouse=True)
def _hide_system_fashion_mnist(request, monkeypatch, tmp_path_factory):
    if request.node.get_closest_marker("realdata"):
        return
    from gradattn.data import sources
    monkeypatch.setattr(sources, "SYSTEM_FASHION_MNIST", tmp_path_factory.getbasetemp() / "no-system-package")
