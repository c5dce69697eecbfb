"""qmail_settings.merge: the parameters per os_family, pillar over them, and the checks."""

import pathlib

import pytest
import yaml
from salt.exceptions import SaltInvocationError

PARAMETERS = pathlib.Path(__file__).resolve().parents[2] / "qmail" / "parameters"
FAMILIES = sorted(p.stem for p in (PARAMETERS / "os_family").glob("*.yaml"))
PILLAR = {"role": "spool", "me": "ccs.cla.kobe-u.ac.jp"}


def load(path):
    return yaml.safe_load((PARAMETERS / path).read_text()) or {}


@pytest.fixture
def merge(modules):
    def _merge(family, pillar):
        return modules.qmail_settings.merge(
            load("defaults.yaml"), load(f"os_family/{family}.yaml"), pillar)
    return _merge


def test_the_families_the_formula_names_have_parameters():
    assert {"Debian", "RedHat", "Suse", "FreeBSD", "IRIX"} <= set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_merges_and_keeps_the_home(merge, family):
    settings = merge(family, PILLAR)
    assert settings["lookup"]["home"] == "/var/qmail"
    assert settings["control_managed"]["me"] == "ccs.cla.kobe-u.ac.jp"


def test_os_family_values_win_over_defaults(merge):
    freebsd = merge("FreeBSD", PILLAR)["lookup"]
    assert freebsd["groups"]["nofiles"] == "qnofiles"
    assert freebsd["rootgroup"] == "wheel"
    assert merge("Debian", PILLAR)["lookup"]["groups"]["nofiles"] == "nofiles"


def test_pillar_lookup_wins_over_os_family(merge):
    pillar = {**PILLAR, "lookup": {"home": "/opt/qmail", "groups": {"nofiles": "nogroup2"}}}
    lookup = merge("FreeBSD", pillar)["lookup"]
    assert lookup["home"] == "/opt/qmail"
    assert lookup["groups"] == {"qmail": "qmail", "nofiles": "nogroup2"}


def test_control_reload_groups_the_managed_files(merge):
    settings = merge("Debian", {**PILLAR, "control": {"concurrencyremote": 40,
                                                      "virtualdomains": None}})
    assert settings["control_reload"] == {
        "hup": ["locals", "virtualdomains"],
        "restart": ["concurrencyremote", "me"],
        "newmrh": [],
    }
    assert settings["control_absent"] == ["virtualdomains"]


@pytest.mark.parametrize(("pillar", "message"), [
    ({"rolle": "spool"}, "qmail:rolle: unknown key"),
    ({"lookup": {"users": {"qmaild": 5}}}, "qmail:lookup:users:qmaild: expected a string"),
    ({"lookup": {"sendmail_paths": "/usr/sbin/sendmail"}},
     "qmail:lookup:sendmail_paths: expected a list"),
    ({"control": {"me": None}}, "qmail:control:me"),
    ({"lookup": {"sendmail_queues": ["relative/q"]}}, r"qmail:lookup:sendmail_queues\[0\]"),
    ({"lookup": {"sendmail_queues": "/var/spool/mqueue"}},
     "qmail:lookup:sendmail_queues: expected a list"),
])
def test_bad_pillar_names_the_key(merge, pillar, message):
    with pytest.raises(SaltInvocationError, match=f"^{message}"):
        merge("Debian", {**PILLAR, **pillar})


@pytest.mark.parametrize("value", ["/var/lib/qmail-formula/sendmail.json",
                                   "/var/lib/qmail-state/sm.json", None])
def test_the_old_journal_key_is_refused_naming_the_new_one(merge, value):
    """sendmail_record was renamed sendmail_journal: a pillar that still sets
    it (even to null, "the default") is told the new name, not ignored."""
    pillar = {**PILLAR, "lookup": {"sendmail_record": value}}
    with pytest.raises(SaltInvocationError) as caught:
        merge("Debian", pillar)
    assert str(caught.value) == ("qmail:lookup:sendmail_record: renamed: it is now "
                                 "qmail:lookup:sendmail_journal (same meaning, same file)")
    # The new key takes the same value; the file on the host stays where it was.
    journal = merge("Debian", {**PILLAR,
                               "lookup": {"sendmail_journal": "/var/lib/qmail-state/sm.json"}})
    assert journal["sendmail"]["journal"] == "/var/lib/qmail-state/sm.json"
    assert merge("Debian", PILLAR)["sendmail"]["journal"] == (
        "/var/lib/qmail-formula/sendmail.json")


def test_sendmail_queue_hand_over_settings(merge):
    settings = merge("Debian", PILLAR)
    assert "/var/spool/mqueue" in settings["lookup"]["sendmail_queues"]
    assert settings["sendmail"]["mqueue_lock"] == "/var/lib/qmail-formula/mqueue.lock"


def test_tls_command_lines_are_data(merge):
    """STARTTLS on 25 through tlswrapper -n + tlswrapper-smtp, 465 through
    tlswrapper alone; tcpserver keeps root (no -u/-g) only under TLS."""
    plain = merge("Debian", PILLAR)["service"]["smtpd_services"]
    assert plain == [{"name": "qmail-smtpd", "port": 25, "tls": "none", "drop": True,
                      "program": ["/bin/sh", "/var/qmail/supervise/qmail-smtpd/smtpd"]}]
    settings = merge("Debian", {**PILLAR, "tls": {"enable": True, "smtps": True}})
    smtpd, smtpsd = settings["service"]["smtpd_services"]
    pem = "/etc/qmail-tls/smtpd.pem"
    # idle timeouts: qmail-smtpd's timeoutsmtpd, not tlswrapper's 60 s / 15 s
    assert smtpd["program"] == ["/usr/bin/tlswrapper", "-t", "1200", "-n", "-f", pem,
                                "/usr/bin/tlswrapper-smtp", "-T", "1200", "-u", "qmaild",
                                "/bin/sh", "/var/qmail/supervise/qmail-smtpd/smtpd"]
    assert smtpsd["port"] == 465 and smtpsd["program"][:7] == [
        "/usr/bin/tlswrapper", "-t", "1200", "-f", pem, "-u", "qmaild"]
    timed = merge("Debian", {**PILLAR, "control": {"timeoutsmtpd": 300},
                             "tls": {"enable": True}})
    assert timed["service"]["smtpd_services"][0]["program"][1:3] == ["-t", "300"]
    assert not smtpd["drop"] and not smtpsd["drop"]
    assert settings["service"]["smtpd_stopped"] == ["qmail-filterd"]  # no qmail:filter
    client = merge("Debian", {"role": "client", "me": "hostname.cla.kobe-u.ac.jp",
                              "spool": "ccs.cla.kobe-u.ac.jp", "tls": {"enable": True}})
    assert client["service"]["smtpd_services"] == [] and not client["tls"]["active"]


@pytest.fixture
def grains(loaders):
    """Set this minion's grains for one test (the layers follow them)."""
    saved = {k: loaders.grains.get(k) for k in ("os_family", "os", "osfinger",
                                                  "osmajorrelease")}
    yield loaders.grains.update
    loaders.grains.update(saved)


def debian(grains, release):
    grains(os_family="Debian", os="Debian", osfinger=f"Debian-{release}",
           osmajorrelease=int(release))


def test_the_layers_are_the_ones_map_jinja_yaml_lists():
    assert load("map_jinja.yaml")["layers"] == ["os_family", "osfinger"]
    for folder in (p for p in PARAMETERS.iterdir() if p.is_dir()):
        assert folder.name in load("map_jinja.yaml")["layers"], folder


@pytest.mark.parametrize(("release", "package"), [("11", ""), ("12", "tlswrapper"),
                                                  ("13", "tlswrapper")])
def test_a_release_layer_overrides_its_os_family(modules, grains, release, package):
    debian(grains, release)
    settings = modules.qmail_settings.show(pillar=PILLAR)
    assert settings["lookup"]["service"]["tls_package"] == package
    assert settings["lookup"]["sendmail_boot"] == "sysv"  # os_family/Debian.yaml's
    layers = ["defaults.yaml", "os_family/Debian.yaml"]
    if release in ("11", "13"):
        layers.append(f"osfinger/Debian-{release}.yaml")
    assert settings["parameters"] == layers


def test_the_pillar_overrides_every_layer(modules, grains):
    debian(grains, "11")
    pillar = {**PILLAR, "lookup": {"sendmail_boot": "systemd", "service": {
        "tls_package": "tlswrapper", "tlswrapper_missing": ""}}}
    lookup = modules.qmail_settings.show(pillar=pillar)["lookup"]
    assert lookup["service"]["tls_package"] == "tlswrapper"  # over osfinger
    assert lookup["sendmail_boot"] == "systemd"               # over os_family


AUTH_PATCH = {"url": "https://patches.example.org/notqmail-1.09-smtp-auth.patch",
              "hash": "sha256=c7627aca0af336b4fb1f05a3529696f2508caac2746f8afe05700520057aaf2f"}
YESCRYPT = "$y$j9T$F5Jx5fExrKuJdvj4.HRbW.$iiO9F69OBDvIchQQ0VYIflVLmgIVdBrdJ4TsAJCyBpC"
# A feature, the release whose layer refuses it, the pillar that asks for
# it, the lookup key a host with the program from elsewhere clears, the
# error, and where the merged settings say the feature is on.
RELEASE_FACTS = {
    "tls": ("11", {"tls": {"enable": True}}, "tlswrapper_missing",
            r"^qmail:tls:enable: Debian 11 has no tlswrapper package", ("tls", "active")),
    "submission": ("13", {"submission": {"enable": True, "users": {"alice": YESCRYPT}},
                          "tls": {"enable": True, "smtps": True},
                          "source": {"patches": [AUTH_PATCH]}}, "cvm_missing",
                   r"^qmail:submission:enable: Debian 13 has no cvm package",
                   ("submission", "enable")),
}


# (submission on 11: refused for TLS first, the tls row's case.)
@pytest.mark.parametrize(("feature", "release"), [
    ("tls", "11"), ("tls", "12"), ("tls", "13"), ("submission", "12"), ("submission", "13")])
def test_a_feature_is_refused_where_debian_lacks_its_package(modules, grains, feature,
                                                             release):
    """Debian 11 has no tlswrapper, Debian 13 no cvm (both checked in the
    archives): release facts of osfinger/, refused naming the key."""
    refused_on, asked, missing, error, (section, flag) = RELEASE_FACTS[feature]
    debian(grains, release)
    pillar = {**PILLAR, **asked}
    if release == refused_on:
        with pytest.raises(SaltInvocationError, match=error):
            modules.qmail_settings.show(pillar=pillar)
        # A host that has the program from elsewhere says so in its lookup.
        pillar["lookup"] = {"service": {missing: ""}}
    assert modules.qmail_settings.show(pillar=pillar)[section][flag]


def test_tls_off_is_fine_on_every_release(modules, grains):
    for release in ("11", "12", "13"):
        debian(grains, release)
        off = {**PILLAR, "tls": {"enable": False}}
        assert not modules.qmail_settings.show(pillar=off)["tls"]["active"]


def test_the_beacon_file_says_the_merged_role_home_and_port(merge):
    """The spool's role is the default here: the beacon's file says it."""
    spool = merge("Debian", {"me": "ccs.cla.kobe-u.ac.jp"})["beacon"]
    assert spool == {"file": "/var/lib/qmail-formula/beacon.json",
                     "host": {"home": "/var/qmail", "role": "spool", "smtpd_port": 25}}
    client = merge("Debian", {"role": "client", "me": "hostname.cla.kobe-u.ac.jp",
                              "spool": "ccs.cla.kobe-u.ac.jp",
                              "lookup": {"home": "/opt/qmail"}})["beacon"]["host"]
    assert client == {"home": "/opt/qmail", "role": "client", "smtpd_port": None}


def test_get_gives_one_setting_by_its_path(modules):
    # What the execution modules fall back on for an argument left out.
    settings = modules.qmail_settings.show()
    assert modules.qmail_settings.get("lookup:home") == settings["lookup"]["home"] == "/var/qmail"
    assert modules.qmail_settings.get("lookup:sendmail_queues") == \
        settings["lookup"]["sendmail_queues"]
    assert modules.qmail_settings.get("sendmail:mqueue_lock").endswith("/mqueue.lock")


def test_get_of_an_unknown_setting_names_it(modules):
    with pytest.raises(SaltInvocationError, match="^key: .*no 'lookup:nothing'"):
        modules.qmail_settings.get("lookup:nothing")
