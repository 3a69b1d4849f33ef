"""A/B of the allocator settings (``bigbigan.runtime.tune_allocator``) in alternating processes.

    python benchmarks/allocator_ab.py --case ref-no-e-gan --rounds 3
    python benchmarks/allocator_ab.py --case small32-base --rounds 5 --iters 5

One process cannot run both allocators, so each round runs ``benchmarks/throughput.py --only CASE`` twice, once
with the settings and once with ``BIGBIGAN_NO_MALLOPT=1`` (glibc's defaults), swapping which goes first every
round so that drift of the machine (heat, other load) falls on both sides alike. Reports per setting the median
and min-max of s/it over rounds, the fraction of the conv ceiling each process measured, the minor page faults
and system CPU time of each process (getrusage of the child), and the ratio of medians and per-round ratios.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one(case: str, tuned: bool, iters: int, repeats: int) -> dict:
    env = dict(os.environ)
    env.pop("BIGBIGAN_NO_MALLOPT", None)
    if not tuned:
        env["BIGBIGAN_NO_MALLOPT"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "t.json"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, str(HERE / "throughput.py"), "--only", case, "--iters", str(iters),
                        "--repeats", str(repeats), "--json", str(out)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        rows = json.loads(out.read_text())["rows"]
    train = next(r for r in rows if r["kind"] == "train")
    return {"tuned": tuned, "s_per_iter": train["s_per_iter_median"], "fraction": train["fraction_of_ceiling"],
            "ceiling": train["ceiling_gflops"], "minflt": after.ru_minflt - before.ru_minflt,
            "sys_s": after.ru_stime - before.ru_stime, "user_s": after.ru_utime - before.ru_utime}


def spread(values: list[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--case", default="ref-no-e-gan", help="a training case of throughput.py")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iters", type=int, default=2, help="iterations per timed block")
    p.add_argument("--repeats", type=int, default=1, help="timed blocks per process")
    p.add_argument("--json", help="write rounds and summary as JSON")
    args = p.parse_args(argv)
    runs: list[dict] = []
    for r in range(args.rounds):
        for tuned in ((True, False) if r % 2 == 0 else (False, True)):
            res = one(args.case, tuned, args.iters, args.repeats)
            runs.append({"round": r, **res})
            print(f"round {r} {'settings' if tuned else 'glibc   '}: {res['s_per_iter']:.3f} s/it "
                  f"({res['fraction']:.2f} of ceiling {res['ceiling']:.0f}), {res['minflt']:,} page faults, "
                  f"{res['sys_s']:.1f} s system", flush=True)
    side = {t: [x for x in runs if x["tuned"] is t] for t in (True, False)}
    ratio = statistics.median(x["s_per_iter"] for x in side[False]) / statistics.median(
        x["s_per_iter"] for x in side[True])
    paired = [g["s_per_iter"] / t["s_per_iter"] for t, g in zip(side[True], side[False])]
    cmd = "python benchmarks/allocator_ab.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"\n{cmd} ({datetime.date.today().isoformat()})\n")
    print("| allocator | s/it, median [min-max] | fraction of conv ceiling | page faults per process | system s per process |")
    print("|---|---|---|---|---|")
    for tuned, name in ((False, "glibc defaults"), (True, "bigbigan settings")):
        xs = side[tuned]
        print(f"| {name} | {spread([x['s_per_iter'] for x in xs], '.3f')} | "
              f"{spread([x['fraction'] for x in xs], '.2f')} | {spread([x['minflt'] for x in xs], ',.0f')} | "
              f"{spread([x['sys_s'] for x in xs], '.1f')} |")
    print(f"\nsettings faster by {ratio:.3f}x (ratio of medians); per round: "
          + ", ".join(f"{x:.3f}" for x in paired))
    if args.json:
        Path(args.json).write_text(json.dumps({"command": cmd, "date": datetime.date.today().isoformat(),
                                               "runs": runs, "ratio_of_medians": ratio, "per_round": paired},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
