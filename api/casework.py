"""Cases, monitoring and the calendar over a store: what the CLI and the API both call.

The engine's pure functions (:mod:`geo.cases`, :mod:`geo.monitoring`,
:mod:`geo.caselists`) work on frames; this module reads those frames from a store's
enterprise list and its :class:`~api.store.casestore.CaseStore`, and writes the results
back in locked transactions.

A registry load is applied to the cases by :func:`sync_cases`: the CLI ``load`` command and
the registry upload call it right after loading (with the load's date); every case read
also calls it, so a load made by any other path is never left unapplied.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy.exc import IntegrityError

from api.store import FeatureQuery, Store
from api.store.casestore import CaseStore, case_store_for
from geo.caselists import ListTables, build_list, build_lists, calendar_report
from geo.cases import (
    SNAPSHOT_FIELDS,
    CaseChange,
    CaseNotFoundError,
    apply_changes,
    states,
    sync_events,
)
from geo.monitoring import attach_enterprises, judge

__all__ = [
    "SyncReport",
    "sync_cases",
    "case_states",
    "case_history",
    "current_states",
    "record_changes",
    "judged_monitoring",
    "list_tables",
    "all_lists",
    "report",
    "load_demo_year",
]

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """A load applied to the cases: counts and the changed fields (verdicts ...)."""

    load_id: int
    as_of: date
    counts: dict[str, int]
    changes: pd.DataFrame

    def to_dict(self, rows: int = 1000) -> dict[str, Any]:
        """JSON-ready (the first ``rows`` changes)."""
        ch = self.changes.head(rows).astype(object).where(self.changes.head(rows).notna(), None)
        return {"load_id": self.load_id, "as_of": self.as_of.isoformat(),
                "counts": self.counts, "changes": ch.to_dict("records")}


def _current(cs: CaseStore, conn: Any = None) -> pd.DataFrame:
    return states(cs.latest(None, conn=conn), cs.cases(conn), as_of=date.max,
                  exit_dates=cs.exit_dates(None, conn=conn))


def sync_cases(store: Store, *, as_of: date | None = None,
               recorded_by: str = "system") -> SyncReport | None:
    """Apply the store's newest load to the cases, once.

    Parameters
    ----------
    as_of
        Effective date of the load's changes (default: the load's date).

    Returns
    -------
    SyncReport or None
        None when the store holds no load or the newest one was applied already.
    """
    loads = store.loads()
    if not loads:
        return None
    rec = loads[0]
    cs = case_store_for(store)
    if cs.synced(rec.load_id):
        return None
    when = as_of or rec.loaded_at.date()
    enterprises = store.query(FeatureQuery()).features
    try:
        with cs.locked() as conn:
            if cs.synced(rec.load_id, conn):
                return None
            res = sync_events(_current(cs, conn), enterprises, load_id=rec.load_id,
                              as_of=when, recorded_by=recorded_by,
                              next_case_id=cs.next_case_id(conn))
            cs.append(conn, cases=res.new_cases, events=res.events)
            cs.record_sync(conn, load_id=rec.load_id, as_of=when, counts=res.counts)
    except IntegrityError:  # another worker applied this load first
        log.info("load %d was applied to the cases concurrently", rec.load_id)
        return None
    return SyncReport(load_id=rec.load_id, as_of=when, counts=res.counts, changes=res.changes)


def case_states(store: Store, as_of: date | None = None) -> pd.DataFrame:
    """States of all cases on ``as_of`` (default today), after applying any new load."""
    sync_cases(store)
    cs = case_store_for(store)
    when = as_of or date.today()
    return states(cs.latest(when), cs.cases(), as_of=when, exit_dates=cs.exit_dates(when))


def case_history(store: Store, case_id: int) -> pd.DataFrame:
    """All events of one case, oldest first (CaseNotFoundError if there is no such case)."""
    sync_cases(store)
    cs = case_store_for(store)
    hist = cs.history(case_id=case_id)
    if hist.empty:
        raise CaseNotFoundError(f"case_id: no case {case_id}.")
    return hist


def record_changes(store: Store, changes: Sequence[CaseChange], *, recorded_by: str,
                   source: str, rows: Sequence[int] | None = None,
                   dry_run: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate and append changes in one locked transaction.

    Returns ``(events, rejected)``; with ``dry_run`` nothing is written.
    """
    sync_cases(store)
    cs = case_store_for(store)
    with cs.locked() as conn:
        events, rejected = apply_changes(_current(cs, conn), changes, recorded_by=recorded_by,
                                         source=source, rows=rows)
        if not dry_run:
            cs.append(conn, events=events)
    return events, rejected


def current_states(store: Store) -> pd.DataFrame:
    """Current states of all cases (latest events whatever their date)."""
    sync_cases(store)
    return _current(case_store_for(store))


def judged_monitoring(store: Store, *, start: date | None = None,
                      end: date | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stored monitoring samples judged against the limits: ``(judged, unmatched)``.

    Samples are matched to the current enterprise list and, for enterprises a later load
    no longer has, to their case's last known snapshot (industry, basin, place), so a
    removed enterprise's past exceedances still count on the lists of their dates.
    """
    cs = case_store_for(store)
    samples = cs.samples(start=start, end=end)
    enterprises = pd.DataFrame(store.query(FeatureQuery()).features.drop(columns="geometry"))
    sync_cases(store)
    latest = cs.latest(None)
    known = latest.pivot(index="case_id", columns="field", values="after") if len(
        latest) else pd.DataFrame(columns=["present", "uscc"])
    known = known.reindex(columns=list(SNAPSHOT_FIELDS)).astype(object)
    known = known.where(known.notna(), "")
    gone = known[known["present"].eq("0") & ~known["uscc"].isin(enterprises["uscc"])]
    gone = gone.assign(lon=pd.to_numeric(gone["lon"], errors="coerce"),
                       lat=pd.to_numeric(gone["lat"], errors="coerce"))
    enterprises = pd.concat([enterprises, gone[[c for c in gone.columns
                                                if c in enterprises.columns]]],
                            ignore_index=True)
    matched, unmatched = attach_enterprises(samples, enterprises)
    return judge(matched), unmatched


def list_tables(store: Store, list_id: str, as_of: date) -> ListTables:
    """One of the plan's lists as of a date."""
    judged, _ = judged_monitoring(store, end=as_of)
    return build_list(list_id, case_states(store, as_of), judged, as_of)


def all_lists(store: Store, as_of: date) -> dict[str, ListTables]:
    """Every list as of a date."""
    judged, _ = judged_monitoring(store, end=as_of)
    return build_lists(case_states(store, as_of), judged, as_of)


def report(store: Store, as_of: date) -> dict[str, pd.DataFrame]:
    """Calendar items (due / late) and overdue cases per department on ``as_of``."""
    judged, _ = judged_monitoring(store, end=as_of)
    return calendar_report(as_of, submissions=case_store_for(store).submissions(),
                           state=case_states(store, as_of), judged=judged)


def load_demo_year(store: Store, *, registry: Any = None, seed: int = 2019,
                   recorded_by: str = "demo") -> dict[str, int]:
    """Fill a store with the SYNTHETIC enforcement year of :mod:`geo.synthetic_year`.

    The registry (default: the bundled sample) with synthetic equipment sizes is loaded as
    of 2019-04-01 and opens the cases; a year of status changes is recorded through the same
    validation as an import; a year of synthetic monitoring is stored. For demos of the map's
    time control and of ``basinwatch report``.
    """
    import hashlib
    import tempfile
    from pathlib import Path

    from geo.cases import read_case_changes
    from geo.monitoring import read_monitoring
    from geo.pipeline import run_pipeline
    from geo.synthetic_year import (
        synthetic_case_changes,
        synthetic_equipment,
        synthetic_monitoring,
        write_monitoring,
    )

    start = date(2019, 4, 1)
    ents = synthetic_equipment(run_pipeline(registry, as_of=start).enterprises, seed=seed)
    rec = store.load_enterprises(ents, loaded_by=recorded_by, source_name="synthetic year",
                                 source_sha256=hashlib.sha256(str(seed).encode()).hexdigest())
    sync_cases(store, as_of=start, recorded_by=recorded_by)
    sheet = synthetic_case_changes(case_states(store, start), seed=seed)
    with tempfile.TemporaryDirectory(prefix="bw-demo-") as tmp:
        xlsx = Path(tmp) / "changes.xlsx"
        sheet.to_excel(xlsx, index=False)
        changes, rows, _ = read_case_changes(xlsx, current=current_states(store))
        events, refused = record_changes(store, changes, recorded_by=recorded_by,
                                         source="import:synthetic year", rows=rows)
        csv = write_monitoring(synthetic_monitoring(ents, seed=seed), Path(tmp) / "m.csv")
        mon = read_monitoring(csv)
    matched, unmatched = attach_enterprises(mon.accepted, ents)
    keep = mon.accepted[mon.accepted["row"].isin(matched["row"])]
    case_store_for(store).add_samples(keep, loaded_by=recorded_by, source_name="synthetic",
                                      source_sha256="0" * 64,
                                      rejected=len(mon.rejected) + len(unmatched))
    return {"load_id": rec.load_id, "cases": len(case_store_for(store).cases()),
            "changes": len(changes) - len(refused), "events": len(events),
            "samples": len(keep)}
