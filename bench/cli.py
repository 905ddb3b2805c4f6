"""`gptbench`: the command line. A thin argparse layer over the library.

Exit codes: 0 ok; 1 a measured failure (parity mismatch, a regression rule, a failed cell when
asked to fail on it); 2 bad input (unknown model/frontend/target, impossible shapes, unreadable
or corrupt file) with one line on stderr saying what is wrong and what to do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.errors import UserError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _out(msg: str = "") -> None:
    print(msg, flush=True)


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------- models
def cmd_models(args) -> int:
    from bench.models import ZOO, describe
    from bench.report import md_table

    rows = []
    for spec in ZOO:
        d = describe(spec)
        rows.append([d["name"], d["family"], f"{d['params'] / 1e6:.2f}M", d["layers"], d["heads"], d["embd"], d["context"], d["vocab"],
                     d["pretrained"], d["available"], d["summary"]])
    _out(md_table(["model", "family", "params", "layers", "heads", "embd", "context", "vocab", "pretrained weights from",
                   "available here", "notes"], rows))
    _out("--weights auto (default) uses pretrained weights where available here, else a seeded random init of the same "
         "architecture; reports always say which.")
    return EXIT_OK


# ------------------------------------------------------------------------------------------- run
def add_run_args(p: argparse.ArgumentParser, frontend_default: str = "export,onnx") -> None:
    p.add_argument("--model", required=True, help="model name(s), comma-separated (see `gptbench models`)")
    p.add_argument("--frontend", default=frontend_default, help=f"export, onnx, fx (comma-separated; default {frontend_default})")
    p.add_argument("--target", default="llvm", help="llvm (this CPU) or cuda (default llvm)")
    p.add_argument("--scenario", default="prefill", help="prefill, decode or generate (default prefill)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=128, help="prompt tokens (prefill, generate)")
    p.add_argument("--past-len", type=int, default=128, help="KV-cache length for --scenario decode")
    p.add_argument("--new-tokens", type=int, default=32, help="tokens to generate for --scenario generate")
    p.add_argument("--shapes", default="static", help="static (fixed batch/seq, default) or symbolic (torch.export.Dim)")
    p.add_argument("--weights", default="auto", help="auto | random | pretrained | PATH (default auto: pretrained where available)")
    p.add_argument("--dtype", default="float32", help="float32 or float16 (cuda)")
    p.add_argument("--threads", type=int, default=0, help="threads for TVM and PyTorch (default: all usable cores)")
    p.add_argument("--cuda-arch", default=None, help="e.g. sm_90; default: the visible GPU, else $GPTBENCH_CUDA_ARCH")
    p.add_argument("--db", default=None, help="MetaSchedule tuning database directory to apply at build (see `gptbench tune`)")
    p.add_argument("--seed", type=int, default=0)


def config_from_args(args):
    from bench.runner import RunConfig

    try:
        return RunConfig(
            models=_csv(args.model), frontends=_csv(args.frontend), target=args.target, scenario=args.scenario,
            batch=args.batch, seq_len=args.seq_len, past_len=args.past_len, new_tokens=args.new_tokens,
            warmup=getattr(args, "warmup", 5), repeat=getattr(args, "repeat", 30), threads=args.threads, shapes=args.shapes,
            weights=args.weights, baselines=_csv(getattr(args, "baselines", "eager")), dtype=args.dtype,
            tol=getattr(args, "tol", 0.0), db=args.db, cuda_arch=args.cuda_arch, isolate=not getattr(args, "no_isolate", True),
            seed=args.seed, cell_timeout=getattr(args, "cell_timeout", 0.0),
        )
    except ValueError as e:
        raise UserError(str(e)) from None


def finish_report(kind: str, name: str, cfg_dict: dict, cells: list[dict], out: str, threads: int, **extra) -> dict:
    from bench.env import collect
    from bench.report import new_report, to_markdown, write_report

    report = new_report(kind, name, cfg_dict, collect(threads), cells, command=sys.argv, **extra)
    paths = write_report(report, out)
    _out(to_markdown(report))
    _err("wrote " + ", ".join(str(p) for p in paths.values()))
    return report


def cmd_run(args) -> int:
    from dataclasses import asdict

    from bench.runner import configure_threads, run_matrix

    cfg = config_from_args(args)
    if args.fail_on not in ("mismatch", "any", "none"):
        raise UserError(f"--fail-on {args.fail_on!r}: choose mismatch, any or none")
    configure_threads(cfg.threads)
    if cfg.target == "cuda":
        from bench.targets import make_target

        info = make_target("cuda", cfg.threads, cfg.cuda_arch)  # fail early on a missing arch
        if not info.device_available:
            _err(f"note: CUDA modules will be compiled but not run: {info.device_reason}")
    cells = run_matrix(cfg)
    finish_report("run", args.name, asdict(cfg), cells, args.out, cfg.threads)
    bad = [c for c in cells if c["status"] != "ok"]
    mismatched = [c for c in cells if c["status"] == "mismatch"]
    if args.fail_on == "any" and bad:
        _err(f"{len(bad)} of {len(cells)} cells not ok: " + ", ".join(f"{c['model']}×{c['frontend']}={c['status']}" for c in bad))
        return EXIT_FAIL
    if args.fail_on == "mismatch" and mismatched:
        _err("parity mismatch: " + ", ".join(f"{c['model']}×{c['frontend']} ({c['parity']['reason']})" for c in mismatched))
        return EXIT_FAIL
    return EXIT_OK


# ---------------------------------------------------------------------------------------- report
def cmd_report(args) -> int:
    from bench.report import load_report, to_markdown

    for f in args.files:
        _out(to_markdown(load_report(f)))
    return EXIT_OK


# -------------------------------------------------------------------------------------- pretrain
def cmd_pretrain(args) -> int:
    from dataclasses import replace

    from bench.pretrain import PRESETS, TrainConfig, train

    if args.preset not in PRESETS:
        raise UserError(f"unknown preset {args.preset!r}; choose from: {', '.join(PRESETS)}")
    if not Path(args.data).is_file():
        raise UserError(f"--data {args.data}: no such file")
    try:
        cfg = TrainConfig(**PRESETS[args.preset])
        overrides = {k: v for k, v in dict(max_iters=args.iters, threads=args.threads, seed=args.seed).items() if v is not None}
        cfg = replace(cfg, **overrides)
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from None
    train(args.data, args.out, cfg, log=_err)
    return EXIT_OK


# ------------------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gptbench",
        description="Benchmark Apache TVM's frontends (torch.export, ONNX, FX) on GPT models against eager PyTorch.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list the model zoo")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("run", help="run a models × frontends matrix on one target; write a report")
    add_run_args(p)
    p.add_argument("--baselines", default="eager", help="eager, compile (torch.compile), ort (ONNX Runtime); comma-separated")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeat", type=int, default=30, help="interleaved timing rounds (samples per backend)")
    p.add_argument("--tol", type=float, default=0.0, help="parity tolerance on relative L2 error (default 1e-5 fp32, 2e-2 fp16)")
    p.add_argument("--no-isolate", action="store_true", help="run cells in this process (faster start; a crash ends the run)")
    p.add_argument("--cell-timeout", type=float, default=0.0, help="kill a cell after this many seconds (isolated cells only)")
    p.add_argument("--fail-on", default="mismatch", help="exit 1 when a cell is: mismatch (default), any (not ok), none")
    p.add_argument("--out", default="results", help="report directory (default results/)")
    p.add_argument("--name", default="run", help="report name (file stem after the timestamp)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="print the Markdown table of report JSON file(s)")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("pretrain", help="train a nanoGPT char-level model on a text file")
    p.add_argument("--data", required=True, help="UTF-8 text file")
    p.add_argument("--preset", default="char", help="char (nanogpt-shakespeare-char) or smoke (tests)")
    p.add_argument("--iters", type=int, default=None, help="override the preset's iterations")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", required=True, help="directory for ckpt.pt and MODEL_CARD.md")
    p.set_defaults(func=cmd_pretrain)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        _err(f"gptbench {args.command}: error: {e}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
