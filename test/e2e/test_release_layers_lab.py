"""
The release layer of parameters/ on real hosts (issue 21): Debian 11, 12
and 13 minions merge the layers their own grains name
(``parameters/map_jinja.yaml``), so Debian 11's fact "no tlswrapper
package" (``osfinger/Debian-11.yaml``) refuses ``qmail:tls`` there and
Debian 13's "no cvm package" (``osfinger/Debian-13.yaml``) refuses
``qmail:submission`` there, each naming the pillar key, and nowhere else;
apt on the host agrees. Nothing is applied: what a user would check with
``salt host qmail_settings.get parameters`` and ``qmail_settings.show``.
Debian 11 runs in ``make test-all`` only.
"""

import pytest

pytestmark = pytest.mark.lab

TLS = {"me": "ccs.cla.kobe-u.ac.jp", "tls": {"enable": True}}
# qmail:submission as the README gives it (the AUTH patch's hash, a yescrypt user).
YESCRYPT = "$y$j9T$F5Jx5fExrKuJdvj4.HRbW.$iiO9F69OBDvIchQQ0VYIflVLmgIVdBrdJ4TsAJCyBpC"
AUTH_PATCH = "sha256=c7627aca0af336b4fb1f05a3529696f2508caac2746f8afe05700520057aaf2f"
SUBMISSION = {"me": "ccs.cla.kobe-u.ac.jp", "tls": {"enable": True, "smtps": True},
              "submission": {"enable": True, "users": {"alice": YESCRYPT}},
              "source": {"patches": [{
                  "url": "https://patches.example.org/notqmail-1.09-smtp-auth.patch",
                  "hash": AUTH_PATCH}]}}


@pytest.mark.parametrize("release", [pytest.param("11", id="debian11",
                                                  marks=pytest.mark.slow),
                                     pytest.param("12", id="debian12"),
                                     pytest.param("13", id="debian13")])
def test_each_release_merges_its_own_layer(lab_master, lab_hosts, release):
    (host,) = lab_hosts(["ccs.cla.kobe-u.ac.jp"], image="base", release=release)
    lab_master.sync_formula(host.fqdn)
    (grain,) = lab_master.salt(host.fqdn, "grains.get", "osfinger").values()
    assert grain == f"Debian-{release}"
    (files,) = lab_master.salt(host.fqdn, "qmail_settings.get", "parameters").values()
    layers = ["defaults.yaml", "os_family/Debian.yaml"]
    if release in ("11", "13"):
        layers.append(f"osfinger/Debian-{release}.yaml")
    assert files == layers
    (shown,) = lab_master.salt(host.fqdn, "qmail_settings.show", pillar=TLS,
                               check=False).values()
    if release == "11":
        assert isinstance(shown, str), shown
        assert "qmail:tls:enable: Debian 11 has no tlswrapper package" in shown
    else:
        assert shown["tls"]["active"] is True
        assert shown["lookup"]["service"]["tls_package"] == "tlswrapper"
    (shown,) = lab_master.salt(host.fqdn, "qmail_settings.show", pillar=SUBMISSION,
                               check=False).values()
    cvm = host.run(["apt-cache", "policy", "cvm"]).stdout
    if release == "13":
        assert "Candidate" not in cvm  # the host's apt: no cvm to install
        assert isinstance(shown, str), shown
        assert "qmail:submission:enable: Debian 13 has no cvm package" in shown
    elif release == "12":
        assert "Candidate: 0.97" in cvm
        assert shown["submission"]["enable"] is True
        assert shown["lookup"]["service"]["cvm_package"] == "cvm"
