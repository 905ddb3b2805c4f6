"""`gptbench bisect` on a tiny git repository of synthetic TVM builds (tests/synthetic): the commit whose
LegalizeOps lowers every matmul twice (several times slower untuned) must be found, a commit that does not
build skipped, and a second run must resume from the state file."""

from __future__ import annotations

import json

import pytest

from tests.synthetic import RECIPE, make_repo, patch_source


@pytest.fixture(autouse=True)
def own_env_cache(tmp_path, monkeypatch):
    """Each test's builds (and the kept checkout of its repository) in a cache of its own: never the user's."""
    monkeypatch.setenv("GPTBENCH_ENV_CACHE", str(tmp_path / "cache"))


CELLS = ["--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "32", "--repeat", "6", "--warmup", "1", "--solo", "0"]


def test_bisect_finds_the_commit_skips_one_that_does_not_build_and_resumes(gptbench, tmp_path):
    repo = tmp_path / "tvm"
    commits = make_repo(repo, [
        ("good: a dev build", {"tvm_patch.py": patch_source("0.28.dev1")}),
        ("docs", {"NOTES.md": "notes\n"}),
        ("break the build", {"BUILD_FAILS": "synthetic compile error\n"}),
        ("fix the build", {"BUILD_FAILS": None}),
        ("LegalizeOps: lower matmul twice", {"tvm_patch.py": patch_source("0.28.dev1", matmul_twice=True)}),
        ("more docs", {"NOTES.md": "more notes\n"}),
    ])
    args = ["bisect", *CELLS, "--tvm-src", repo, "--tvm-recipe", RECIPE, "--good", commits[0], "--bad", "main",
            "--fail-on", "median:100%", "--out", tmp_path / "bisect"]
    code, out, err = gptbench(*args)
    assert code == 0, err[-4000:]
    assert f"first bad commit: {commits[4]} LegalizeOps: lower matmul twice" in out
    (state_file,) = (tmp_path / "bisect").glob("bisect-*.json")
    state = json.loads(state_file.read_text())
    verdicts = {s["commit"]: s["verdict"] for s in state["steps"]}
    assert verdicts == {commits[5]: "bad", commits[2]: "skip", commits[3]: "good", commits[4]: "bad"}
    assert "synthetic compile error" in next(s["reason"] for s in state["steps"] if s["verdict"] == "skip")
    evidence = next(s for s in state["steps"] if s["commit"] == commits[4])
    assert evidence["report"].endswith(".md") and "median:100%" in evidence["failures"][0]
    # resume: the last step forgotten (as after a Ctrl-C during it), the same command tests only that commit
    state["steps"] = state["steps"][:-1]
    del state["verdicts"][commits[4]]
    state_file.write_text(json.dumps(state))
    code, out, err = gptbench(*args)
    assert code == 0 and f"first bad commit: {commits[4]}" in out, err[-3000:]
    assert err.count("bisect: step") == 1 and f"testing {commits[4][:12]}" in err and "building" not in err


def test_bisect_says_when_bad_does_not_regress(gptbench, tmp_path):
    repo = tmp_path / "tvm"
    commits = make_repo(repo, [("a", {"tvm_patch.py": patch_source("0.28.dev1")}), ("b", {"NOTES.md": "x\n"})])
    code, _, err = gptbench("bisect", *CELLS, "--tvm-src", repo, "--tvm-recipe", RECIPE, "--good", commits[0], "--bad", commits[1],
                            "--rounds", "1", "--fail-on", "median:50%", "--out", tmp_path / "b")
    assert code == 1 and "shows no regression against --good: nothing to bisect" in err.strip().splitlines()[-1], err[-3000:]


def test_bisect_bad_input_is_one_line(gptbench, tmp_path):
    repo = tmp_path / "tvm"
    commits = make_repo(repo, [("a", {"tvm_patch.py": patch_source()}), ("b", {"NOTES.md": "x\n"})])
    base = ["bisect", *CELLS, "--tvm-src", repo, "--tvm-recipe", RECIPE, "--out", tmp_path / "b"]
    for good, bad, message in [(commits[1], commits[0], "is not a descendant of --good"), ("nope", commits[1], "git:nope: no such commit")]:
        code, _, err = gptbench(*base, "--good", good, "--bad", bad)
        assert code == 2 and message in err and err.strip().count("\n") == 0, err


def test_an_ab_that_cannot_tell_is_measured_again_then_skipped_not_called_good(tmp_path, monkeypatch):
    """A commit whose A/B saw TVM slower but was untrustworthy (eager, the control, moved between the two
    processes: a noisy machine) is measured once more; so twice, it is skipped, never counted good. Eager
    moving while TVM did not is still good."""
    from types import SimpleNamespace

    import bench.bisect as B

    outcomes = []

    def fake_ab(cfg, state, rounds, judging, step_dir, name, env, command, log):
        result = outcomes.pop(0)
        return result, [step_dir / "a.json", step_dir / "b.json"], None

    monkeypatch.setattr(B, "ensure", lambda spec, log, recipe: None)
    monkeypatch.setattr(B, "run_ab", fake_ab)
    cfg = SimpleNamespace(tvm_src=str(tmp_path), tvm_recipe=None, tvm=[])
    monkeypatch.setattr(B, "replace", lambda c, **kw: c)
    opts = dict(rounds=1, judging=None, state=None, env={}, command=[])
    def cell(verdict):
        return SimpleNamespace(label="nanogpt-tiny × export", tvm=SimpleNamespace(verdict=verdict))

    untrusted = SimpleNamespace(failures=[], untrustworthy=["nanogpt-tiny × export"], compare=SimpleNamespace(cells=[cell("slower")]))
    quiet = SimpleNamespace(failures=[], untrustworthy=[], compare=SimpleNamespace(cells=[cell("no change")]))
    eager_only = SimpleNamespace(failures=[], untrustworthy=["nanogpt-tiny × export"], compare=SimpleNamespace(cells=[cell("no change")]))
    logged = []

    outcomes[:] = [untrusted, quiet]
    verdict, _ = B.test_commit(cfg, "a" * 40, "b" * 40, tmp_path / "s1", opts, logged.append)
    assert verdict == B.GOOD and outcomes == [] and any("measuring once more" in m for m in logged)
    outcomes[:] = [untrusted, untrusted]
    verdict, evidence = B.test_commit(cfg, "a" * 40, "c" * 40, tmp_path / "s2", opts, logged.append)
    assert verdict == B.SKIP and "could not tell twice" in evidence["reason"]
    outcomes[:] = [eager_only]  # eager moved, TVM did not: no regression hidden, still good
    verdict, _ = B.test_commit(cfg, "a" * 40, "d" * 40, tmp_path / "s3", opts, logged.append)
    assert verdict == B.GOOD and outcomes == []
