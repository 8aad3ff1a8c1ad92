"""A migration's report as the state records it: six hot syncs over eight days, then a cold window
with every step timed, walked through the state's own transitions (no hand-written times)."""
import datetime

from ansible_collections.bluemind.migration.plugins.module_utils import state as st

T0 = datetime.datetime(2026, 11, 20, 9, 0, tzinfo=datetime.timezone.utc)
WINDOW = 8 * 86400 + 11 * 3600  # the cold window opens eight days and eleven hours after T0


def at(seconds):
    return T0 + datetime.timedelta(seconds=seconds)


def span(start, end):
    """A work module's own span, as bluemind_sync and bluemind_db_transfer return it."""
    return {"started_at": st.stamp(at(start)), "ended_at": st.stamp(at(end))}


PULL = {"bytes": 1000, "files": 10, "seconds": 30.0,
        "trees": [{"path": "/var/spool/cyrus", "bytes": 1000, "files": 10, "seconds": 29.5, "changes": 10, "deleted": 0}]}


def events(origin="bm-old"):
    """(seconds after T0, phase, event, result) of a whole migration."""
    out = [(0, "prereq", "done", {"origin": origin, "version": "4.9.3884"})]
    for number, day in enumerate((0.1, 1.2, 2.5, 4.3, 6.0, 7.9), 1):
        start, seconds = day * 86400, 600.0 / number
        out.append((start + seconds, "hot_sync", "done", dict(PULL, seconds=seconds, **span(start, start + seconds))))
    w = WINDOW
    out += [(w, "cold_sync", "start", None), (w + 14, "cold_sync", "stopped", None),
            (w + 16, "db_migrate", "start", {"job": "1"}),
            (w + 61, "cold_sync", "done", dict(PULL, verify=dict(trees=[], **span(w + 40, w + 60)), **span(w + 16.5, w + 39))),
            (w + 62, "db_migrate", "done", dict(span(w + 15.2, w + 33), seconds=17.8, databases=[], names=[])),
            (w + 63, "config_copy", "start", None), (w + 71, "config_copy", "done", {}),
            (w + 75, "cutover", "start", None), (w + 160, "cutover", "serving", None),
            (w + 170, "cutover", "admin", None), (w + 190, "cutover", "done", {})]
    return out


def report(until=None, origin="bm-old", target="bm-new"):
    """The report (state, target, downtime) after the events up to ``until`` (a phase/event pair)."""
    state = {}
    for seconds, phase, event, result in events(origin):
        state = st.apply(state, phase, event, result, now=at(seconds))
        if (phase, event) == until:
            break
    return dict(state, target=target, downtime_seconds=st.summary(state)["downtime_seconds"] or 0)
