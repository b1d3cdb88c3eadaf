"""`make test` on a fresh machine: the Debian packages the tests need are installed, or named exactly."""

from __future__ import annotations

import pytest
from e2e.testenv import hostpackages

ABSENT = hostpackages.Need("pilotfish-no-such-package", "/nonexistent/pilotfish-probe", "the tests of this test")
PRESENT = hostpackages.Need("coreutils", "ls", "everything")


def test_every_need_of_the_real_lists_names_its_package_probe_and_reason():
    for need in hostpackages.BASE + hostpackages.NODE:
        assert need.package and need.probe and need.why.startswith("the ")
    assert "prometheus" in [need.package for need in hostpackages.BASE]
    assert {"containerd", "runc", "containernetworking-plugins", "buildah", "mmdebstrap"} <= {
        need.package for need in hostpackages.NODE
    }


def test_nothing_missing_means_nothing_is_installed_and_success(monkeypatch):
    monkeypatch.setattr(hostpackages.subprocess, "run", lambda *a, **k: pytest.fail("nothing to install"))
    assert hostpackages.ensure((PRESENT,)) == 0


def test_without_root_the_missing_package_is_named_with_the_command_that_installs_it(monkeypatch, capsys):
    monkeypatch.setattr(hostpackages.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(hostpackages.subprocess, "run", lambda *a, **k: pytest.fail("must not run apt-get"))
    assert hostpackages.ensure((PRESENT, ABSENT)) == 2
    message = capsys.readouterr().err
    assert "pilotfish-no-such-package: for the tests of this test" in message
    assert "sudo apt-get install -y pilotfish-no-such-package\n" in message
    assert "coreutils" not in message


def test_as_root_apt_get_is_asked_and_a_package_it_cannot_install_is_still_reported(monkeypatch, capsys):
    monkeypatch.setattr(hostpackages.os, "geteuid", lambda: 0)
    monkeypatch.setattr(hostpackages.shutil, "which", lambda name: f"/usr/bin/{name}")
    commands: list[list[str]] = []
    monkeypatch.setattr(hostpackages.subprocess, "run", lambda argv, **k: commands.append(argv))
    assert hostpackages.ensure((ABSENT,)) == 2
    assert commands == [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "pilotfish-no-such-package"]]
    assert "pilotfish-no-such-package" in capsys.readouterr().err


def test_the_node_tier_without_root_says_it_needs_root_and_how_to_leave_it_out(monkeypatch, capsys):
    monkeypatch.setattr(hostpackages.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(hostpackages.subprocess, "run", lambda *a, **k: pytest.fail("must not run apt-get"))
    assert hostpackages.ensure(hostpackages.BASE + hostpackages.NODE) == 2
    message = capsys.readouterr().err
    assert "need root" in message and "uid 1000" in message and "PILOTFISH_SKIP_NODE=1" in message
