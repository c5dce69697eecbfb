"""Throwaway real hosts for testing the qmail formula.

The lab builds Debian 12 images with debootstrap (no registry needed), runs
them as podman containers that boot systemd, and drives their salt-minions
from a real salt-master started with pytest-salt-factories.

Modules:
    config   -- paths and constants (lab dir, Salt version, network names)
    podman   -- a podman wrapper with its own storage and containers.conf
    hoststate-- snapshot/restore of the machine state podman/netavark touch
    image    -- build and cache the ``base`` and ``sendmail`` images
    host     -- one throwaway host (a container booting systemd)
    lab      -- the lab network and a set of hosts
    master   -- a salt-master for the hosts, with a tiny API
    pytest_plugin -- fixtures: lab, lab_master, lab_hosts, lab_hosts_module,
                qmail_source, and source_or_skip (see its docstring)
    source   -- the real qmail source: $QMAIL_SOURCE* or the official download
    fleet    -- a test module's hosts and master: apply, call, changed
    smtp     -- SMTP greeting and RCPT checks, from outside or inside a host
    wait     -- wait_until
    demo     -- ``python -m lab demo``; ``python -m lab images|clean`` (__main__)

Everything lives under $QMAIL_LAB_DIR (default /var/tmp/qmail-lab), outside
the repository; ``python -m lab clean --all`` removes it.
"""
