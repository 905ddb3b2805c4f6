"""The history store, its step detection, `gptbench history` and the dashboard.

The store tests run against SQLite and, where PostgreSQL's server programs are installed (Debian's
`postgresql`), against a real server started on loopback for this module; the browser test loads the
published site in headless Chromium (Debian's `chromium`). Each is skipped with the reason where its
program is absent."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bench.history.detect import MIN_POINTS, Obs, judge, judge_point, replay

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "results/reference/bisect-demo-20261206/steps/step-0-f7a5206463/20261207T004528Z-ab-good.json"


# ------------------------------------------------------------------------------------------ helpers
def make_report(i: int, factor: float = 1.0, noise: float = 0.02, seed: int = 0, status: str = "ok", name: str = "hist") -> dict:
    """A one-cell report made from a committed one: run i (an hour apart), TVM's samples scaled by factor and
    by a run-to-run drift of ±noise, eager's by the drift alone."""
    rep = json.loads(TEMPLATE.read_text())
    rng = random.Random(seed * 1000 + i)
    drift = 1 + rng.uniform(-noise, noise)
    rep["name"] = name
    rep["created"] = f"2026-12-0{1 + i // 24}T{i % 24:02d}:00:00+00:00"
    cell = rep["cells"][0]
    from bench.record import Latency

    for lat, f in ((cell["tvm"], factor * drift), (cell["baselines"]["eager"]["latency"], drift)):
        samples = [s * f * (1 + rng.uniform(-0.01, 0.01)) for s in lat["samples"]]
        lat.update(Latency.from_seconds([x / 1e3 for x in samples]).to_json())
    cell["timing"]["flags"] = []
    cell["speedup"] = {"eager": cell["baselines"]["eager"]["latency"]["median"] / cell["tvm"]["median"]}
    if status != "ok":
        cell.update(status=status, tvm=None, error="injected", stage="build", speedup={})
        cell["baselines"] = {}
    return rep


def write_reports(dir_: Path, reports: list[dict]) -> list[Path]:
    dir_.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, rep in enumerate(reports):
        p = dir_ / f"r{i:03d}.json"
        p.write_text(json.dumps(rep))
        paths.append(p)
    return paths


def table_counts(store: str) -> dict:
    from bench.history.store import counts, open_store

    s = open_store(store, create=False)
    try:
        return counts(s)
    finally:
        s.close()


# ------------------------------------------------------------------------------------------ PostgreSQL
def _pg_bin() -> Path | None:
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    return None


def _free_port() -> int:  # free now; the server takes it a moment later
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A PostgreSQL server of this machine's own, on loopback, for this module; its URL."""
    bin_ = _pg_bin()
    if bin_ is None:
        pytest.skip("PostgreSQL's server programs are not installed (Debian: apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver: pip install 'psycopg[binary]' (make setup installs it)")
    import pwd
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="gptbench-pg-"))
    data = base / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: as the package's postgres user
        try:
            pg = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no postgres user to run PostgreSQL as")
        as_user = ["runuser", "-u", "postgres", "--"]
        base.chmod(0o755)
        os.chown(base, pg.pw_uid, pg.pw_gid)
    port = _free_port()
    subprocess.run([*as_user, str(bin_ / "initdb"), "-D", str(data), "-A", "trust", "-U", "gptbench", "--no-sync"],
                   check=True, capture_output=True, timeout=120)
    subprocess.run([*as_user, str(bin_ / "pg_ctl"), "-D", str(data), "-w", "-l", str(data.parent / "log"), "-o",
                    f"-k {base} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True, timeout=120)
    yield f"postgresql://gptbench@127.0.0.1:{port}/postgres"
    subprocess.run([*as_user, str(bin_ / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """A new, empty store: an SQLite file, or a fresh database on the module's PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite")
    url = request.getfixturevalue("postgres")
    import psycopg

    name = f"h{time.time_ns()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + "/" + name


# ------------------------------------------------------------------------------------------ detection
def _series(n: int, noise: float, seed: int, u: float = 0.01) -> list[Obs]:
    rng = random.Random(seed)
    return [Obs(10.0 * (1 + rng.gauss(0, noise)), u) for _ in range(n)]


def test_unchanged_noisy_series_rarely_raise_an_alarm_and_a_20_percent_step_does():
    quiet = [v for seed in range(200) for v in replay(_series(20, 0.03, seed)) if v.kind != "too few points"]
    alarms = [v for v in quiet if v.step]
    assert len(quiet) > 3000 and len(alarms) < 0.005 * len(quiet), (len(alarms), [v.describe() for v in alarms][:3])
    first = second = 0
    for seed in range(50):
        pts = _series(10, 0.03, seed)
        first += judge(pts, Obs(12.0, 0.01)).kind == "suspect regression"  # one run 20% slower: suspect
        second += judge([*pts, Obs(12.0, 0.01)], Obs(12.2, 0.01)).kind == "regression"  # the next agrees: a step
    assert first >= 45 and second >= 45, (first, second)  # over ±3% run-to-run noise


def test_a_series_noisier_than_the_step_does_not_flag_it():
    pts = _series(10, 0.15, 1)
    assert judge([*pts, Obs(12.0, 0.01)], Obs(12.0, 0.01)).kind == "no change"  # +20% within ±15% run-to-run: not a step


def test_too_few_points_is_said_and_not_a_step():
    v = judge(_series(MIN_POINTS - 1, 0.01, 0), Obs(50.0, 0.01))
    assert v.kind == "too few points" and not v.step and f"of {MIN_POINTS}" in v.describe()


def test_a_points_own_noise_widens_its_judgement():
    base = _series(10, 0.01, 3)
    assert judge_point(base, Obs(11.5, 0.01)).kind == "regression"
    assert judge_point(base, Obs(11.5, 0.06)).kind == "no change"  # its own samples spread 6% around their median


def test_unstable_points_stay_out_of_the_baseline():
    base = [*_series(6, 0.01, 4), *(Obs(30.0, 0.01, unstable=True) for _ in range(3))]
    assert judge_point(base, Obs(12.5, 0.01)).kind == "regression"
    assert judge_point(base[:7], Obs(12.5, 0.01)).kind == "regression"


def test_replay_starts_a_new_segment_at_a_step():
    pts = _series(8, 0.01, 5) + [Obs(m.median * 1.5, m.rel_se) for m in _series(8, 0.01, 6)]
    kinds = [v.kind for v in replay(pts)]
    assert kinds[8:10] == ["suspect regression", "regression"] and kinds.count("regression") == 1
    assert kinds[10] == "too few points" and set(kinds[11:]) == {"no change"}  # the new segment starts at point 8


def test_the_ratio_to_eager_is_used_where_it_is_quieter():
    rng = random.Random(7)
    drifts = [1 + rng.uniform(-0.15, 0.15) for _ in range(12)]  # the whole machine drifts ±15% from run to run
    pts = [Obs(10 * d, 0.005, control=(20 * d, 0.005)) for d in drifts]
    v = judge_point(pts[:-1], replace(pts[-1], median=pts[-1].median * 1.2))
    assert v.kind == "regression" and v.metric == "ratio to eager", v.describe()
    whole_machine = replace(pts[-1], median=pts[-1].median * 1.2, control=(pts[-1].control[0] * 1.2, 0.005))
    assert judge_point(pts[:-1], whole_machine).kind == "no change"  # eager slowed as much: the machine, not TVM


# ------------------------------------------------------------------------------------------ the store
def test_add_show_check_and_re_add(store, tmp_path, gptbench):
    paths = write_reports(tmp_path / "r", [make_report(i) for i in range(6)])
    code, _out, err = gptbench("history", "add", *paths, "--history", store)
    assert code == 0 and "added 6 report(s), 6 cell(s)" in err, err
    code, _out, err = gptbench("history", "add", tmp_path / "r", "--history", store)
    assert code == 0 and "added 0 report(s)" in err and "6 already there" in err, err
    assert table_counts(store) == dict(runs=6, points=6, latencies=12, machines=1)
    code, out, err = gptbench("history", "show", "--history", store)
    assert code == 0 and "nanogpt-tiny × export, llvm prefill b1 t32" in out and out.count("\n| 2026-12-01") == 6, out
    code, out, err = gptbench("history", "check", "--history", store)
    assert code == 0 and "no regression: 1 series checked" in err and "0 regression(s)" in out, (out, err)


def test_check_flags_a_slowdown_and_a_failed_cell(store, tmp_path, gptbench):
    history = [make_report(i) for i in range(8)]
    write_reports(tmp_path / "a", history)
    assert gptbench("history", "add", tmp_path / "a", "--history", store)[0] == 0
    write_reports(tmp_path / "b", [make_report(8, factor=1.2)])
    assert gptbench("history", "add", tmp_path / "b", "--history", store)[0] == 0
    code, out, err = gptbench("history", "check", "--history", store)
    assert code == 0 and "1 suspect(s)" in out and "suspect regression +" in out, (out, err)  # one run: said, not failed
    write_reports(tmp_path / "b2", [make_report(9, factor=1.2)])
    assert gptbench("history", "add", tmp_path / "b2", "--history", store)[0] == 0
    code, out, err = gptbench("history", "check", "--history", store)
    assert code == 1 and "1 regression(s)" in err and "tvm regression +" in err and "2 runs in a row" in err, (out, err)
    assert "nanogpt-tiny × export" in err
    code, _out, err = gptbench("history", "check", "--history", store, "--fail-on", "status")
    assert code == 0, err  # a slowdown is not a status change

    write_reports(tmp_path / "c", [make_report(9, status="build_failed")])
    assert gptbench("history", "add", tmp_path / "c", "--history", store)[0] == 0
    code, _out, err = gptbench("history", "check", "--history", store, "--fail-on", "status")
    assert code == 1 and "ok → build_failed" in err, err


def test_bad_input_is_one_line_exit_2_and_the_store_unchanged(store, tmp_path, gptbench):
    good = write_reports(tmp_path / "r", [make_report(i) for i in range(3)])
    assert gptbench("history", "add", good[0], "--history", store)[0] == 0
    bad = tmp_path / "bad.json"
    rep = make_report(5)
    rep["cells"][0]["tvm"]["samples"] = ["fast"]
    bad.write_text(json.dumps(rep))
    code, _out, err = gptbench("history", "add", good[1], bad, good[2], "--history", store)
    assert code == 2 and err.count("\n") == 1 and "bad.json" in err and "\"samples\"[0]" in err, err
    truncated = tmp_path / "cut.json"
    truncated.write_text(good[1].read_text()[:300])
    code, _out, err = gptbench("history", "add", good[1], truncated, "--history", store)
    assert code == 2 and "is not valid JSON" in err, err
    assert table_counts(store)["runs"] == 1  # neither batch added anything


def test_an_add_that_fails_midway_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    from bench.history import store as S
    from bench.reports.report import read_report

    db = str(tmp_path / "h.sqlite")
    paths = write_reports(tmp_path / "r", [make_report(i) for i in range(4)])
    prepared = [S.prepare(read_report(p), str(p)) for p in paths]
    st = S.open_store(db)
    S.add(st, prepared[:1])
    real, calls = S._add_one, []

    def dies_on_the_third(conn, p):
        calls.append(p)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as Ctrl-C would, after two reports were written in the transaction
        return real(conn, p)

    monkeypatch.setattr(S, "_add_one", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        S.add(st, prepared[1:])
    assert S.counts(st)["runs"] == 1 and S.counts(st)["points"] == 1
    st.close()


def test_two_adds_at_once_both_land(store, tmp_path):
    a = write_reports(tmp_path / "a", [make_report(i, name="a") for i in range(10)])
    b = write_reports(tmp_path / "b", [make_report(i, name="b", seed=1) for i in range(10)])
    from bench.history.store import open_store

    open_store(store).close()  # made once; the two adds race on the data, not on making the tables
    procs = [subprocess.Popen([sys.executable, "-m", "bench.cli", "history", "add", str(d), "--history", store], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for d in (a[0].parent, b[0].parent)]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert table_counts(store)["runs"] == 20


def test_stores_that_are_not_gptbench_stores_are_refused(tmp_path, gptbench):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n" * 10)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE people (name TEXT)")
    before = other.read_bytes()
    for spec, message in ((text, "not an SQLite file"), (other, "not a gptbench history store (it has tables people)"),
                          (tmp_path, "is a directory"), ("mysql://u@localhost/db", "unsupported database 'mysql'"),
                          ("postgresql://nobody:secret@127.0.0.1:1/none", "cannot open the store")):
        code, _out, err = gptbench("history", "add", TEMPLATE, "--history", spec)
        assert code == 2 and message in err and err.count("\n") == 1 and "secret" not in err, (spec, err)
    assert other.read_bytes() == before and text.read_text() == "hello\n" * 10
    code, _out, err = gptbench("history", "show", "--history", tmp_path / "new.sqlite")
    assert code == 2 and "no gptbench history store there yet" in err and not (tmp_path / "new.sqlite").exists(), err


def test_every_committed_reference_report_imports(tmp_path, gptbench):
    from tests.test_reference_reports import REPORTS

    db = tmp_path / "h.sqlite"
    code, _out, err = gptbench("history", "add", ROOT / "results/reference", "--history", db)
    assert code == 0, err
    refs = [p for p in REPORTS if "results/reference" in str(p)]
    assert f"added {len(refs)} report(s)" in err, (len(refs), err)
    code, out, _err = gptbench("history", "show", "--history", db, "--machine", "H200")
    assert code == 0 and "cuda" in out


# ------------------------------------------------------------------------------------------ the site
@pytest.fixture
def site(tmp_path, gptbench):
    """A published site of one series: 8 quiet runs, one unstable, then a 30% slowdown."""
    reports = [make_report(i) for i in range(8)] + [make_report(8 + i, factor=1.3) for i in range(3)]
    reports[4]["cells"][0]["timing"]["flags"] = ["solo check: eager: solo median 2 ms vs 1 ms in the rounds (injected)"]
    write_reports(tmp_path / "r", reports)
    db = tmp_path / "h.sqlite"
    assert gptbench("history", "add", tmp_path / "r", "--history", db)[0] == 0
    code, _out, err = gptbench("history", "publish", "--history", db, "--out", tmp_path / "site")
    assert code == 0, err
    return tmp_path / "site"


def test_publish_writes_pages_that_link_to_what_exists(site):
    index = (site / "index.html").read_text()
    series = list((site / "series").glob("*.html"))
    assert len(series) == 1 and f'href="series/{series[0].name}"' in index
    page = series[0].read_text()
    assert page.count('class="step"') == 1 and "step: tvm +" in page and page.count('class="point unstable"') == 1  # eager's, in run 5
    import re

    for href in re.findall(r'href="([^"#]+)"', page):
        assert (series[0].parent / href).resolve().is_file(), href  # every point links to its run's page
    assert len(list((site / "runs").glob("*.json"))) == 11


def test_publish_refuses_a_directory_it_did_not_write_and_replaces_its_own(site, tmp_path, gptbench):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep me")
    code, _out, err = gptbench("history", "publish", "--history", tmp_path / "h.sqlite", "--out", mine)
    assert code == 2 and "not a gptbench site" in err and (mine / "thesis.tex").read_text() == "keep me"
    (site / "series" / "stale.html").write_text("old")
    code, _out, err = gptbench("history", "publish", "--history", tmp_path / "h.sqlite", "--out", site)
    assert code == 0 and not (site / "series" / "stale.html").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site")]  # no temporary directory left


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="no Chromium to load the site in (Debian: apt-get install chromium)")
def test_the_site_renders_in_a_real_browser(site, tmp_path):
    """What a person would see, read back from headless Chromium: the series, its step marker, the points,
    and no console error (a missing resource or a script error would print one)."""
    series = next((site / "series").glob("*.html"))
    for page, expect in ((site / "index.html", ["nanogpt-tiny × export, llvm prefill b1 t32", "regression +", "<svg class=\"spark\""]),
                         (series, ['class="step"', "step: tvm +", 'class="point unstable"', "run (UTC), oldest first"])):
        proc = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
                               "--virtual-time-budget=2000", "--dump-dom", page.as_uri()],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        dom = proc.stdout
        for text in expect:
            assert text in dom, (page.name, text)
        console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Failed to load resource" in line]
        assert not console, console
    if os.environ.get("GPTBENCH_SCREENSHOT"):  # for a person to look at: GPTBENCH_SCREENSHOT=DIR
        for page in (site / "index.html", series):
            subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
                            "--window-size=1100,900", f"--screenshot={Path(os.environ['GPTBENCH_SCREENSHOT']) / (page.stem + '.png')}",
                            page.as_uri()], capture_output=True, timeout=120)


def test_the_filter_script_is_the_only_script(site):
    index = (site / "index.html").read_text()
    assert index.count("<script") == 1 and "getElementById('filter')" in index and 'id="filter"' in index
    assert "http://" not in index and "https://" not in index  # nothing from the network


def test_run_refuses_a_store_that_is_not_one_before_any_work(tmp_path, gptbench):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    code, _out, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--history", notes, "--out", tmp_path / "out")
    assert code == 2 and "not an SQLite file" in err and err.count("error:") == 1, err
    assert err.strip().splitlines()[-1].startswith("gptbench run: error: --history")
    assert not list((tmp_path / "out").glob("*.json"))  # no cell ran, no report

