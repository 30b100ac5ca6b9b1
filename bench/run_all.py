"""`make bench`: every measurement in one run, one table, its figures and plots in a new temporary directory.

    .venv/bin/python bench/run_all.py [--under-load] [--quick] [--record] [NAME ...]

Each item runs as its own process (bench/<script> --json PART) and measures
its baseline in the same run, interleaved with it: these machines are noisy
and absolute times drift, so the ratios are what to compare. The load
average is recorded beside every figure. ``--under-load`` runs every item
beside ``stress-ng --cpu 2``; the ``peers-under-load`` item does so for the
durable writes alone, always. ``--quick`` shrinks the repetitions (not the
sizes) for a smoke run.

A run writes results.json and the plots into a new temporary directory and
says where; only ``--record`` (``make bench-record``) writes the recorded
run, bench/results.json and docs/perf-*.png (``--results`` and ``--plots``
name other places). ``--help`` lists the items.

Exit status: 0 when every item ran (a missed target is a MISS row in the
table and in results.json, not a failure of the run), 1 when an item broke,
2 on a bad name.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from machine import describe, load_average  # noqa: E402

# name -> (script, its arguments in a full run, in a --quick run)
ITEMS = {
    "peers": ("peers.py", [], ["--rounds", "3", "--per-round", "50"]),
    "peers-under-load": ("peers.py", ["--under-load"], ["--under-load", "--rounds", "3", "--per-round", "50"]),
    "writers": ("writers.py", [], ["--rounds", "1", "--seconds", "1"]),
    "scaling": ("scaling.py", [], ["--rounds", "1", "--history-runs", "3"]),
    "hooks": ("hooks_compare.py", [], ["--runs", "5"]),
    "latency": ("projector_latency.py", ["--starts", "60", "--poll-starts", "5"], ["--starts", "10", "--poll-starts", "2"]),
    "memory": ("watch_memory.py", [], []),
    "reader": ("gateway_reader.py", [], ["--rounds", "2"]),
    "reader-under-load": ("gateway_reader.py", ["--under-load"], ["--under-load", "--rounds", "2"]),
    # PostgreSQL (a private server, tests/pg_cluster.py) beside SQLite, quiet and beside stress-ng.
    "fleet": ("fleet.py", [], ["--rounds", "1", "--seconds", "1", "--hook-runs", "3"]),
    "fleet-under-load": ("fleet.py", ["--under-load"], ["--under-load", "--rounds", "1", "--seconds", "1",
                                                        "--hook-runs", "3"]),
}
LEGACY = {
    "append": "append_throughput.py",
    "record-exit": "record_exit.py",
    "history": "history.py",
    "boot": "projector_boot.py",
}
# The items that draw a plot (bench/plots.py, which needs matplotlib).
PLOTTED = ("peers", "peers-under-load", "writers", "scaling", "hooks", "memory")
RECORDED_RESULTS = HERE / "results.json"
RECORDED_PLOTS = HERE.parent / "docs"


def debian_packages_missing(names: list[str], under_load: bool) -> list[str]:
    """The Debian packages the items ``names`` need and this machine lacks (`make bench` installs them)."""
    import glob
    import shutil

    needed = []
    if under_load or any("--under-load" in ITEMS[name][1] for name in names):
        if shutil.which("stress-ng") is None:
            needed.append("stress-ng")
    # The fleet's script starts a private PostgreSQL server (tests/pg_cluster.py).
    if any(ITEMS[name][0] == "fleet.py" for name in names) and not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        needed.append("postgresql")
    return needed


def destinations(record: bool, results: Path | None, plots: Path | None) -> tuple[Path, Path]:
    """Where a run writes its results.json and plots: the recorded place only when asked to record,
    else (unless named) a new temporary directory, so a run never changes a tracked file."""
    if record:
        return results or RECORDED_RESULTS, plots or RECORDED_PLOTS
    if results is not None and plots is not None:
        return results, plots
    scratch = Path(tempfile.mkdtemp(prefix="hermes-bench-"))
    return results or scratch / "results.json", plots or scratch


def run_item(name: str, arguments: list[str], under_load: bool, parts: Path) -> dict:
    script, _, _ = ITEMS[name]
    part = parts / f"{name}.json"
    argv = [sys.executable, str(HERE / script), *arguments, *(["--under-load"] if under_load and
                                                             "--under-load" not in arguments else [])]
    command = " ".join([".venv/bin/python", f"bench/{script}", *argv[2:]])
    print(f"\n=== {name}: {command}", flush=True)
    began = time.monotonic()
    status = subprocess.run([*argv, "--json", str(part)]).returncode
    seconds = time.monotonic() - began
    print(f"=== {name}: exit {status} after {seconds:.0f} s", flush=True)
    figures = json.loads(part.read_text()) if part.exists() else None
    return {"command": command, "exit": status, "seconds": round(seconds, 1), "figures": figures}


def rows(items: dict) -> list[tuple[str, str, str, str]]:
    """(measure, figure, target, verdict) for the table, from each item's figures."""
    table = []

    def add(measure: str, figure: str, target: str = "", verdict: bool | None = None) -> None:
        table.append((measure, figure, target, "" if verdict is None else ("ok" if verdict else "MISS")))

    for name in ("peers", "peers-under-load"):
        figures = (items.get(name) or {}).get("figures")
        if not figures:
            continue
        suffix = f" ({figures['under_load']})" if figures.get("under_load") else ""
        rates, ratios = figures["rates"], figures["ratios"]
        for side, rate in rates.items():
            add(f"durable writes/s{suffix}: {side}",
                f"{rate:,.0f} ({figures['cpu_us_per_write'][side]:.0f} us CPU per write)")
        targets = {"hermes-state / eventsourcing (read back)": ">= 1.0",
                   "hermes-state / eventsourcing (in memory)": ">= 0.9", "raw sqlite3 / hermes-state": "<= 2.0"}
        for ratio, value in ratios.items():
            paired = figures["median_round_ratios"].get(ratio)
            add(f"  {ratio}{suffix}", f"{value:.2f}" + (f" (per round, median {paired:.2f})" if paired else ""),
                targets.get(ratio, ""), figures["verdicts"].get(ratio))
    figures = (items.get("writers") or {}).get("figures")
    if figures:
        for count, row in figures["writers"].items():
            add(f"{count} writer(s): appends/s, p50/p99, wait/work, errors",
                f"{row['rate']:,.0f}/s, {row['p50_ms']:.1f}/{row['p99_ms']:.0f} ms, "
                f"{row['lock_wait_ms_mean']:.1f}/{row['work_ms_mean']:.1f} ms, {row['errors']}",
                "0 errors" if count == "8" else "", row["errors"] == 0 if count == "8" else None)
        add("8 writers / 1 writer, aggregate rate", f"{figures['ratio_8_to_1']:.2f}", ">= 0.7",
            figures["ratio_8_to_1"] >= 0.7)
    figures = (items.get("scaling") or {}).get("figures")
    if figures:
        for label in figures["logs"]:
            doctor = f", doctor {figures['doctor_ms'][label]:,.0f} ms" if label in figures["doctor_ms"] else ""
            add(f"{label}: boot wall (CPU, its pass), profile_status{', doctor' if doctor else ''}",
                f"{figures['boot_ms'][label]['median']:,.0f} ms ({figures['boot_cpu_ms'][label]:.0f}, "
                f"{figures['boot_pass_ms'][label]:.0f} ms), "
                f"{figures['profile_status_ms'][label]:.1f} ms{doctor}")
        wall = figures["boot_1M_over_10k_wall"]
        add("boot, 1,000 profiles: 1M / 10k events, CPU time", f"{figures['boot_1M_over_10k']:.2f} "
            f"(wall: median {wall['median']:.2f}, min {wall['min']:.2f})", "<= 1.2", figures["boot_1M_over_10k"] <= 1.2)
        for label, kept in figures.get("doctor_checkpoint_ms", {}).items():
            ratio = figures["doctor_checkpoint_ratio_to_integrity_check"][label]
            large = label == figures["by_events"][-1]
            add(f"{label}: doctor with its checkpoint / integrity_check",
                f"{kept:,.0f} ms / {figures['integrity_check_ms'][label]:,.0f} ms = {ratio:.2f}x "
                f"(--full {figures['doctor_ms'][label]:,.0f} ms)", "<= 1.5" if large else "",
                ratio <= 1.5 if large else None)
        if "history_first_line_ms" in figures:
            add("history, whole stream (--limit 0 --json): its first line", f"{figures['history_first_line_ms']:.0f} ms")
        to_plain = figures.get("history_ratio_to_plain_read", {})
        for command, ratio in figures["history_ratio_to_version"].items():
            if command not in ("hermes --version", "hermes-state --version"):
                plain = f", {to_plain[command]:.2f}x the plain read" if command in to_plain else ""
                add(f"{command}, 100k-event stream / --version",
                    f"{figures['history_ms'][command]:.0f} ms, {ratio:.2f}x{plain}")
    figures = (items.get("hooks") or {}).get("figures")
    if figures:
        for command, row in figures["hooks_ms"].items():
            add(f"{command}: p50 / p95 (CPU p50)", f"{row['p50']:.0f} / {row['p95']:.0f} ms ({row['cpu_p50']:.0f} ms)",
                "p95 <= 500 ms" if command.endswith("record-exit") else "",
                row["p95"] <= 500 if command.endswith("record-exit") else None)
        for ratio, value in figures["ratios_p50"].items():
            add(f"  {ratio} (p50)", f"{value:.1f}x")
    figures = (items.get("latency") or {}).get("figures")
    if figures:
        for mode, row in figures["latency_ms"].items():
            add(f"event-to-slot, {mode}: p50 / p99 (n={row['n']})", f"{row['p50']:.1f} / {row['p99']:.1f} ms")
        add("poll-only p50 / inotify p50", f"{figures['poll_over_inotify_p50']:.0f}x", ">= 10x",
            figures["poll_over_inotify_p50"] >= 10)
    figures = (items.get("memory") or {}).get("figures")
    if figures:
        add(f"watch daemon RSS: start, first batch -> after {figures['events']:,} events",
            f"{figures['start_mb']:.1f}, {figures.get('warm_mb', figures['start_mb']):.1f} -> {figures['end_mb']:.1f} MB "
            f"(peak {figures['peak_mb']:.1f})",
            "< 80 MB, ±5%", all(figures["verdicts"].values()))
    for name in ("fleet", "fleet-under-load"):
        figures = (items.get(name) or {}).get("figures")
        if not figures:
            continue
        suffix = f" ({figures['under_load']})" if figures.get("under_load") else ""
        for configuration, row in figures["rows"].items():
            per_sync = row.get("commits_per_wal_sync")
            add(f"{configuration}{suffix}: appends/s (x sqlite 1 writer), p50/p99, wait/work, errors",
                f"{row['rate']:,.0f}/s ({row['ratio_to_baseline']:.2f}x), {row['p50_ms']:.1f}/{row['p99_ms']:.0f} ms, "
                f"{row['lock_wait_ms_mean']:.1f}/{row['work_ms_mean']:.1f} ms, {row['errors']}"
                + ("" if per_sync is None else f", {per_sync:.2f} commits/WAL sync of {row['wal_sync_ms_mean']:.2f} ms"),
                "0 errors", row["errors"] == 0)
        for ratio, value in figures["ratios"].items():
            add(f"  {ratio}{suffix}", f"{value:.2f}")
        hooks = figures["hooks"]
        for command in ("postgresql: record-exit", "sqlite: record-exit", "postgresql: record-start"):
            row = hooks["ms"][command]
            add(f"{command}{suffix}: p50 / p95 (CPU p50), / python -c pass",
                f"{row['p50']:.0f} / {row['p95']:.0f} ms ({row['cpu_p50']:.0f} ms), "
                f"{hooks['ratio_to_floor_p50'][command]:.1f}x")
    return table


def print_table(table: list[tuple[str, str, str, str]], items: dict) -> None:
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    print()
    print(f"{'measure':<{widths[0]}}  {'figure':<{widths[1]}}  {'target':<{widths[2]}}  verdict")
    for measure, figure, target, verdict in table:
        print(f"{measure:<{widths[0]}}  {figure:<{widths[1]}}  {target:<{widths[2]}}  {verdict}")
    for name, item in items.items():
        if item.get("figures"):
            f = item["figures"]
            print(f"  [{name}: {item['seconds']:.0f} s, load average {f.get('load_average_before')} -> "
                  f"{f.get('load_average_after')}]")
        else:
            print(f"  [{name}: BROKE, exit {item['exit']}, no figures]")


def about(script: str) -> str:
    """What a benchmark measures: the first line of its script's docstring (one source, no list to keep)."""
    import ast

    docstring = ast.get_docstring(ast.parse((HERE / script).read_text())) or ""
    first = docstring.splitlines()[0] if docstring else script
    return first if len(first) <= 100 else first[:99] + "…"


def item_list() -> str:
    """One line per item for --help: its name and what it measures."""
    named = [(name, about(script) + (" (beside stress-ng --cpu 2)" if "--under-load" in full else ""))
             for name, (script, full, _) in ITEMS.items()]
    named += [(name, f"(older) {about(script)}") for name, script in LEGACY.items()]
    width = max(len(name) for name, _ in named)
    return "\n".join(f"  {name:<{width}}  {text}" for name, text in named)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"items (default: the first {len(ITEMS)}, in this order; the older ones by name only):\n"
        + item_list(),
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="the items to run (default: all but the older ones)")
    parser.add_argument("--under-load", action="store_true", help="every item beside stress-ng --cpu 2")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions: a smoke run, not figures")
    parser.add_argument("--record", action="store_true",
                        help="write the recorded run: bench/results.json and docs/perf-*.png (make bench-record)")
    parser.add_argument("--results", type=Path, help="write results.json here (default: a new temporary directory)")
    parser.add_argument("--plots", type=Path, help="draw the plots here (default: beside the results)")
    parser.add_argument("--missing-debian-packages", action="store_true",
                        help="print the Debian packages these items need and this machine lacks, and exit")
    args = parser.parse_args()
    unknown = [name for name in args.names if name not in ITEMS and name not in LEGACY]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join([*ITEMS, *LEGACY])}", file=sys.stderr)
        return 2
    if args.missing_debian_packages:
        print(" ".join(debian_packages_missing([n for n in args.names if n in ITEMS] or list(ITEMS), args.under_load)))
        return 0
    legacy = [name for name in args.names if name in LEGACY]
    if legacy:  # the older benchmarks print their own figures
        statuses = [subprocess.run([sys.executable, str(HERE / LEGACY[name])]).returncode for name in legacy]
        if len(legacy) == len(args.names):
            return max(statuses)
    names = [name for name in args.names if name in ITEMS] or list(ITEMS)
    started = datetime.now(timezone.utc)
    began = time.monotonic()
    items = {}
    with tempfile.TemporaryDirectory(prefix="hermes-bench-parts-") as parts:
        machine = describe(Path(tempfile.gettempdir()))
        for name in names:
            _, full, quick = ITEMS[name]
            items[name] = run_item(name, quick if args.quick else full, args.under_load, Path(parts))
    results = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - began),
        "command": " ".join([".venv/bin/python", "bench/run_all.py", *sys.argv[1:]]),
        "quick": args.quick, "under_load": args.under_load,
        "machine": machine, "load_average_at_end": load_average(),
        "items": items,
    }
    table = rows(items)
    results["table"] = [dict(zip(("measure", "figure", "target", "verdict"), row)) for row in table]
    results_path, plots_dir = destinations(args.record, args.results, args.plots)
    results_path.write_text(json.dumps(results, indent=1) + "\n")
    print_table(table, items)
    drawn = []
    if any(name in PLOTTED for name in names):
        from plots import draw  # matplotlib: the optional `bench` extra
        drawn = draw(results, plots_dir)
    plots = ", ".join(str(p) for p in drawn) or "no plot (none for these items)"
    kept = "" if args.record else " (not recorded: make bench-record, or --record, writes bench/results.json and docs/)"
    print(f"\nwrote {results_path} and {plots}; {results['seconds']} s in all{kept}")
    return 1 if any(not item.get("figures") for item in items.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
