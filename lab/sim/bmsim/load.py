"""Mail load: SMTP messages to 127.0.0.1:25, to random users of the directory (unit bm-sim-load).

  python3 -m bmsim.load                        until stopped, at RATE messages/second read from
                                               /etc/bm/sim-load.conf (a line `RATE=2`; 2 without it)
  python3 -m bmsim.load --count N --rate R     N messages at R/s in the foreground

Every message has a unique Message-ID (<load.RUN.N@bmsim.lab.test>) and is logged to
/var/log/bm-sim/load.jsonl as sent (with refused recipients) or failed (postfix down: the message
is dropped, not retried). A JSON summary is printed at the end.
"""
import argparse
import email.utils
import json
import os
import random
import signal
import smtplib
import time

from bmsim import common
from bmsim.seed import transaction

CONF = os.environ.get("BMSIM_LOAD_CONF", "/etc/bm/sim-load.conf")
DEFAULT_RATE = 2.0
SMTP = ("127.0.0.1", 25)
SENDER = "load@example.net"
DB_RETRY = 5


class Stop(Exception):
    """SIGTERM (systemctl stop) or Ctrl-C."""


def stop(signum, frame):
    raise Stop()


def read_rate(path=CONF):
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition("=")
                if key.strip() == "RATE":
                    return float(value.strip().strip('"'))
    except FileNotFoundError:
        pass
    return DEFAULT_RATE


def addresses():
    """Mail addresses of the users (their canonical domain), in a stable order."""
    with transaction(common.read_bm_ini().get("db", "bj")) as cur:
        cur.execute("SELECT e.login || '@' || e.domain_uid FROM t_directory_entry e "
                    "JOIN t_domain d ON d.name = e.domain_uid WHERE e.kind = 'USER' "
                    "AND NOT e.archived AND NOT d.global ORDER BY 1")
        return [row[0] for row in cur.fetchall()]


def message(run, n, recipients):
    return ("From: Load generator <%s>\r\nTo: %s\r\nSubject: load %s %d\r\nDate: %s\r\n"
            "Message-ID: <load.%s.%d@bmsim.lab.test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "Message %d of load run %s.\r\n" % (SENDER, ", ".join(recipients), run, n,
                                                email.utils.formatdate(), run, n, n, run)).encode()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m bmsim.load", description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, help="send N messages, then stop (default: until stopped)")
    parser.add_argument("--rate", type=float, help="messages per second (default: RATE of %s)" % CONF)
    parser.add_argument("--seed", type=int, default=42, help="random seed of the recipients (default 42)")
    args = parser.parse_args(argv)
    rate = args.rate or read_rate()
    if rate <= 0:
        parser.error("the rate must be positive")
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    rng = random.Random(args.seed)
    run = "%x" % int(time.time() * 1000)
    sent = failed = n = 0
    smtp = None
    started = time.monotonic()
    try:
        while True:
            try:
                users = addresses()
                break
            except Exception as exc:  # PostgreSQL not up yet: the unit waits instead of failing
                if args.count is not None:
                    raise
                common.log_event("load", event="waiting", error=str(exc).strip())
                time.sleep(DB_RETRY)
        common.log_event("load", event="started", run=run, rate=rate, count=args.count, users=len(users))
        while args.count is None or n < args.count:
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            n += 1
            recipients = rng.sample(users, min(len(users), rng.choice((1, 1, 1, 2, 3))))
            msgid = "load.%s.%d@bmsim.lab.test" % (run, n)
            try:
                if smtp is None:
                    smtp = smtplib.SMTP(*SMTP, timeout=30)
                refused = smtp.sendmail(SENDER, recipients, message(run, n, recipients))
                sent += 1
                common.log_event("load", event="sent", msgid=msgid, recipients=recipients,
                                 refused=sorted(refused))
            except (smtplib.SMTPException, OSError) as exc:
                failed += 1
                common.log_event("load", event="failed", msgid=msgid, recipients=recipients,
                                 error="%s: %s" % (type(exc).__name__, exc))
                if smtp is not None:
                    smtp.close()
                smtp = None
    except Stop:
        pass
    if smtp is not None:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
    summary = {"run": run, "rate": rate, "sent": sent, "failed": failed,
               "seconds": round(time.monotonic() - started, 1)}
    common.log_event("load", event="stopped", **summary)
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
