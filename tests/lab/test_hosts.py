"""The lab hosts are what the issue asks for: distributions, PostgreSQL majors, services, files, owners."""
import subprocess

import pytest

from labpaths import LAB_INVENTORY, TOP

pytestmark = pytest.mark.bluemind(4, reason='Debian 11/12, PostgreSQL 13/15, Cyrus files and bm-lmtpd')

EXPECTED = {"origin": ("11", "13"), "target": ("12", "15")}


@pytest.mark.parametrize("role", ["origin", "target"])
def test_distribution_and_postgresql(lab, role):
    host = lab.host(role)
    debian, pg = EXPECTED[role]
    assert host.run("cut -d. -f1 /etc/debian_version").stdout.strip() == debian
    assert host.run("runuser -u postgres -- psql -Atc 'SHOW server_version_num'").stdout.strip()[:2] == pg


@pytest.mark.parametrize("role", ["origin", "target"])
def test_real_services_run(lab, role):
    out = lab.host(role).run("systemctl is-active ssh postfix postgresql bluemind.target bm-core bm-lmtpd")
    assert out.stdout.split() == ["active"] * 6


def test_cyrus_and_elasticsearch_uids_differ(lab):
    uid = {r: lab.host(r).run("id -u cyrus; id -u elasticsearch").stdout.split() for r in EXPECTED}
    assert uid["origin"][0] != uid["target"][0]
    assert uid["origin"][1] != uid["target"][1]


@pytest.mark.parametrize("role", ["origin", "target"])
def test_bluemind_files(lab, role):
    host = lab.host(role)
    # BlueMind builds its packages per distribution
    suite = {"origin": "bullseye", "target": "bookworm"}[role]
    assert host.run("dpkg-query -W -f='${Version}' bm-core").stdout == "4.9.3884-" + suite
    assert host.run("stat -c '%a %U %G' /etc/bm/bm-core.tok").stdout.strip() == "440 root www-data"
    ini = host.run("sed -n 's/^external-url = //p' /etc/bm/bm.ini").stdout.strip()
    assert ini == "bluemind.lab.test"
    for path in ["/etc/bm/mcast.id", "/etc/ssl/certs/bm_cert.pem", "/etc/imapd.conf", "/etc/cyrus.conf",
                 "/etc/bm-hps/hps.properties", "/etc/bm-webmail/bm-webmail.ini",
                 "/usr/share/bm-elasticsearch/config/elasticsearch.yml", "/etc/postfix/virtual_mailbox-flat",
                 "/etc/postfix/virtual_mailbox.db", "/var/lib/bm-ca/cacert.pem"]:
        host.run(f"test -s '{path}'")
    mcast = host.run("cat /etc/bm/mcast.id").stdout.strip()
    assert host.run("sed -n 's/^cluster.name: //p' /usr/share/bm-elasticsearch/config/elasticsearch.yml"
                    ).stdout.strip() == f"bluemind-{mcast}"


def test_origin_has_a_per_domain_certificate(lab):
    lab.origin.run("test -s /etc/ssl/certs/bm_cert-lab.test.pem && test -s /etc/bm/certs/bm_cert-lab.test.pem")
    assert lab.target.run("test -e /etc/bm/certs/bm_cert-lab.test.pem", check=False).returncode == 1


def test_hosts_have_their_own_identity(lab):
    for cmd in ["cat /etc/bm/mcast.id", "cat /etc/bm/bm-core.tok", "cat /etc/ssh/ssh_host_ed25519_key.pub"]:
        assert lab.origin.run(cmd).stdout != lab.target.run(cmd).stdout, cmd


def test_controller_reaches_both_hosts_with_ansible(lab):
    proc = subprocess.run(
        [str(TOP / ".venv/bin/ansible"), "-i", str(LAB_INVENTORY), "all", "-m", "ping", "-o"],
        capture_output=True, text=True, timeout=120, cwd=TOP, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == 2
