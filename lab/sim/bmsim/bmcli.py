"""A stand-in for BlueMind's `bm-cli` (the admin command line): records each call in
/var/log/bm-sim/bm-cli.jsonl. Only `bm-cli tick reconfigure` (the monitoring reconfiguration the
vendor's address change ends with) is known; anything else exits 2 like an unknown command."""
import sys

from bmsim.common import log_event

KNOWN = (["tick", "reconfigure"],)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    known = argv in [list(k) for k in KNOWN]
    log_event("bm-cli", argv=argv, known=known)
    if not known:
        sys.stderr.write("Unknown command: %s (the simulated bm-cli knows only 'tick reconfigure')\n"
                         % " ".join(argv))
        return 2
    print("tick reconfiguration requested")
    return 0


if __name__ == "__main__":
    sys.exit(main())
