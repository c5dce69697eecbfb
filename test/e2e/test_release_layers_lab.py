"""
The release layer of parameters/ on real hosts (issue 21): a Debian 11 and
a Debian 12 minion merge the layers their own grains name
(``parameters/map_jinja.yaml``), so Debian 11's fact "no tlswrapper
package" (``osfinger/Debian-11.yaml``) refuses ``qmail:tls`` there, naming
the pillar key, and nowhere else. Nothing is applied: what a user would
check with ``salt host qmail_settings.get parameters`` and
``qmail_settings.show``. Debian 11 runs in ``make test-all`` only.
"""

import pytest

pytestmark = pytest.mark.lab

TLS = {"me": "ccs.cla.kobe-u.ac.jp", "tls": {"enable": True}}


@pytest.mark.parametrize("release", [pytest.param("11", id="debian11",
                                                  marks=pytest.mark.slow),
                                     pytest.param("12", id="debian12")])
def test_each_release_merges_its_own_layer(lab_master, lab_hosts, release):
    (host,) = lab_hosts(["ccs.cla.kobe-u.ac.jp"], image="base", release=release)
    lab_master.salt(host.fqdn, "saltutil.sync_all")
    (grain,) = lab_master.salt(host.fqdn, "grains.get", "osfinger").values()
    assert grain == f"Debian-{release}"
    (files,) = lab_master.salt(host.fqdn, "qmail_settings.get", "parameters").values()
    layers = ["defaults.yaml", "os_family/Debian.yaml"]
    if release == "11":
        layers.append("osfinger/Debian-11.yaml")
    assert files == layers
    (shown,) = lab_master.salt(host.fqdn, "qmail_settings.show", pillar=TLS,
                               check=False).values()
    if release == "11":
        assert isinstance(shown, str), shown
        assert "qmail:tls:enable: Debian 11 has no tlswrapper package" in shown
    else:
        assert shown["tls"]["active"] is True
        assert shown["lookup"]["service"]["tls_package"] == "tlswrapper"
