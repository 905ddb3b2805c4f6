"""`gptbench history`: every run's cells kept in a store (bench.history.store), series judged for steps
with each point's own noise (bench.history.detect), a static dashboard (bench.history.site).

    history add REPORT|DIR…     import reports (a directory: every report under it)
    history show [filters]      series as Markdown tables: one row each, or every point with --points
    history check [filters]     the newest point of each series against its history; exit 1 on a regression
    history publish [--out DIR] a static site that opens from file:// (index, a page per series, the runs)

Every command takes --history PATH|URL (default $GPTBENCH_HISTORY, else results/history.sqlite); `run`,
`ab`, `passes` and `measure` add their reports to the same store unless --no-history."""

from __future__ import annotations

import argparse
import sys

from bench.core.errors import UserError
from bench.reports.report import read_report

EXIT_OK, EXIT_FAIL = 0, 1


def _out(msg: str = "") -> None:
    print(msg, flush=True)


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def add_reports(spec: str | None, paths: list[str], log=_err) -> list:
    """Read and check every report first, then add them all in one transaction (bad input: UserError, the
    store unchanged)."""
    from bench.history.store import add, find_reports, open_store, prepare

    files, passed_over = find_reports(paths)
    if not files:
        raise UserError(f"no gptbench reports in {', '.join(paths)}")
    prepared = [prepare(read_report(f), str(f)) for f in files]
    store = open_store(spec)
    try:
        added = add(store, prepared)
    finally:
        store.close()
    new = [a for a in added if a.run_id is not None]
    log(f"history {store.where}: added {len(new)} report(s), {sum(a.cells for a in new)} cell(s)"
        + (f"; {len(added) - len(new)} already there" if len(added) > len(new) else "")
        + (f"; {passed_over} other JSON file(s) passed over (not reports)" if passed_over else ""))
    return added


def _series(args):
    from bench.history.series import group, select
    from bench.history.store import load_points, open_store

    store = open_store(args.history, create=False)
    try:
        points = load_points(store)
    finally:
        store.close()
    chosen = select(group(points), model=args.model, frontend=args.frontend, machine=args.machine, match=args.match)
    if not chosen:
        raise UserError(f"history {store.where}: no series match" if points else f"history {store.where}: the store is empty")
    return store, chosen


def cmd_add(args) -> int:
    add_reports(args.history, args.reports)
    return EXIT_OK


def cmd_show(args) -> int:
    from bench.history.views import points_table, summary_table

    store, chosen = _series(args)
    if args.points or len(chosen) == 1:
        for s in chosen:
            _out(points_table(s, args.last))
    else:
        _out(summary_table(chosen))
    _err(f"{len(chosen)} series from {store.where}")
    return EXIT_OK


def cmd_check(args) -> int:
    from bench.history.series import parse_rules
    from bench.history.views import check_table

    rules = parse_rules(args.fail_on)
    store, chosen = _series(args)
    failures = [f for s in chosen for f in s.failures(rules)]
    _out(check_table(chosen, args.all))
    if failures:
        _err(f"{len(failures)} regression(s) in {store.where} (--fail-on {','.join(rules)}):")
        for f in failures:
            _err(f"  {f}")
        return EXIT_FAIL
    _err(f"no regression: {len(chosen)} series checked in {store.where} (--fail-on {','.join(rules)})")
    return EXIT_OK


def cmd_publish(args) -> int:
    from bench.history.site import publish

    store, chosen = _series(args)
    try:
        index = publish(store, chosen, args.out)  # the runs' reports are read from the store again
    finally:
        store.close()
    _err(f"wrote {index} ({len(chosen)} series); open it in a browser (file://{index.resolve()})")
    return EXIT_OK


def add_store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--history", default=None, metavar="PATH|URL", help="the history store: an SQLite file or a postgresql:// URL "
                   "(default $GPTBENCH_HISTORY, else results/history.sqlite)")


def _filters(p: argparse.ArgumentParser) -> None:
    add_store_arg(p)
    p.add_argument("--model", default=None, help="only this model's series")
    p.add_argument("--frontend", default=None, help="only this frontend's series")
    p.add_argument("--machine", default=None, help="only machines whose key contains this (e.g. znver4, H200)")
    p.add_argument("--match", default=None, metavar="TEXT", help="only series whose name or key contains TEXT")


def register(subparsers) -> None:
    p = subparsers.add_parser("history", help="results over time: add reports to a store, show series, check the newest "
                              "points for steps, publish a dashboard")
    sub = p.add_subparsers(dest="history_command", required=True, metavar="ACTION")
    a = sub.add_parser("add", help="add reports (files, or directories searched for reports) to the store")
    a.add_argument("reports", nargs="+", metavar="REPORT|DIR")
    add_store_arg(a)
    a.set_defaults(func=cmd_add)
    s = sub.add_parser("show", help="series as Markdown tables (one row per series; every point with --points)")
    _filters(s)
    s.add_argument("--points", action="store_true", help="every point of each series (the default for a single series)")
    s.add_argument("--last", type=int, default=20, help="points per series with --points (default 20)")
    s.set_defaults(func=cmd_show)
    c = sub.add_parser("check", help="judge the newest point of each series against its history; exit 1 on a regression")
    _filters(c)
    c.add_argument("--fail-on", default=None, metavar="RULES", help="what fails the check, comma-separated: tvm (TVM's "
                   "latency stepped up), baselines (a baseline's did), status (a cell that was ok is not); default tvm,status")
    c.add_argument("--all", action="store_true", help="list every judged series, not only those with a step or too few points")
    c.set_defaults(func=cmd_check)
    u = sub.add_parser("publish", help="write a static dashboard (opens from file://, no network)")
    _filters(u)
    u.add_argument("--out", default="results/site", metavar="DIR", help="the site's directory (default results/site; a site "
                   "published there before is replaced whole, any other non-empty directory refused)")
    u.set_defaults(func=cmd_publish)
