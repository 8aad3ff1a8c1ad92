"""What a BlueMind 4.9 server holds beside the seven trees and the databases (issue 10, point 7),
seeded by `bm-sim seed` after the trees:

- `/var/spool/bm-hollowed/directory/<domain>/`: the Hollow snapshots of each domain's directory
  (bluemindfork DirectoryDeserializer.BASE_DATA_DIR), derived from the database;
- `/etc/bm/domains-settings` (`<domainUid>:<externalUrl>`) and the nginx vhosts that bm-client-access's
  configure-nginx.sh writes from it (`bin/bm-configure-nginx`, installed at the real path);
- the firewall script `/etc/init.d/bm-iptables` as the core writes it at install;
- BlueMind plugin packages (`bm-plugin-*`) at bm-core's version, as local .debs.
"""
import os
import shutil
import subprocess

from bmsim import api_firewall, common

HOLLOWED = "/var/spool/bm-hollowed"
DOMAINS_SETTINGS = "/etc/bm/domains-settings"
CONFIGURE_NGINX = "/usr/share/bm-client-access/bin/configure-nginx.sh"
PLUGINS = ("bm-plugin-core-ldap-import", "bm-plugin-admin-console-ldap-import")
SIM_BIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bin")


def hollowed(domains, seed):
    shutil.rmtree(HOLLOWED, ignore_errors=True)
    for n, domain in enumerate(domains):
        d = os.path.join(HOLLOWED, "directory", domain)
        os.makedirs(d)
        for version in (1, 2):
            name = "snapshot-%d%03d" % (seed, version)
            with open(os.path.join(d, name), "wb") as fh:
                fh.write(("hollow blob %s %s %d\n" % (domain, name, n)).encode() * 64)
        with open(os.path.join(d, "announced.version"), "w") as fh:
            fh.write("%d%03d\n" % (seed, 2))
    if common.major() >= 5:
        # 5.x: the authentication tokens' store (bluemindfork master TokensStore.BASE_DATA_DIR
        # /var/spool/bm-hollowed/tokens); its file layout inside is the lab's (unconfirmed).
        t = os.path.join(HOLLOWED, "tokens")
        os.makedirs(t)
        with open(os.path.join(t, "tokens-%d" % seed), "wb") as fh:
            fh.write(b"hollow tokens blob\n" * 16)


def nginx(settings):
    common.write_atomic(DOMAINS_SETTINGS, "".join("%s:%s\n" % pair for pair in settings))
    os.makedirs(os.path.dirname(CONFIGURE_NGINX), exist_ok=True)
    shutil.copy(os.path.join(SIM_BIN, "bm-configure-nginx"), CONFIGURE_NGINX)
    os.chmod(CONFIGURE_NGINX, 0o755)
    subprocess.run([CONFIGURE_NGINX], check=True, stdout=subprocess.DEVNULL)


def firewall(host):
    if not os.path.exists(api_firewall.RULES_FILE):
        api_firewall.install_rules(api_firewall.build_rules([host + "/32"]))


def plugins():
    version = common.installed_version()
    upstream = version.rsplit("-", 1)[0] if version and "-" in version else version
    for name in PLUGINS:
        subprocess.run([os.path.join(SIM_BIN, "bm-sim-add-package"), name, upstream], check=True,
                       stdout=subprocess.DEVNULL)


def seed(ini, domains, settings, seed_value):
    hollowed(domains, seed_value)
    nginx(settings)
    firewall(ini["host"])
    plugins()
    return dict(hollowed_domains=len(domains), nginx_domains=len(settings))
