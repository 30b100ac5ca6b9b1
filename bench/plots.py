"""Draw the PNGs under docs/ from bench/results.json (run_all calls this; it can run alone).

    .venv/bin/python bench/plots.py [bench/results.json] [--out docs]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
OURS, PEER, FLOOR = "#1f6feb", "#9a6700", "#8c959f"


def _stamp(figure, results: dict, item: str) -> None:
    """The command and the load beside every figure."""
    figures = results["items"][item]["figures"]
    load = figures.get("load_average_before"), figures.get("load_average_after")
    machine = results["machine"]
    figure.text(0.01, 0.01, f"{results['items'][item]['command']}   ·   {machine['cores']} cores, "
                f"load average {load[0]} → {load[1]}   ·   {results['finished'][:16]} UTC",
                fontsize=7, color="#57606a")


def peers(results: dict, out: Path) -> Path | None:
    runs = [name for name in ("peers", "peers-under-load") if _has(results, name)]
    if not runs:
        return None
    figure, axes = plt.subplots(1, len(runs), figsize=(6.5 * len(runs), 3.6), squeeze=False, sharey=True)
    for axis, name in zip(axes[0], runs):
        rates = results["items"][name]["figures"]["rates"]
        sides = list(rates)[::-1]
        colours = [OURS if s == "hermes-state" else FLOOR if s.startswith("raw") else PEER for s in sides]
        axis.barh(sides, [rates[s] for s in sides], color=colours)
        for y, side in enumerate(sides):
            versus = "" if side == "hermes-state" else f"  (hermes-state {rates['hermes-state'] / rates[side]:.2f}x)"
            axis.text(rates[side], y, f" {rates[side]:,.0f}/s{versus}", va="center", fontsize=8)
        axis.set_xlim(0, max(rates.values()) * 1.6)
        load = results["items"][name]["figures"].get("under_load")
        axis.set_title(f"durable writes, one per transaction: {'under ' + load if load else 'without stress-ng'}", fontsize=10)
        axis.set_xlabel("writes per second (higher is better)")
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    _stamp(figure, results, runs[0])
    return _save(figure, out / "perf-peers.png")


def writers(results: dict, out: Path) -> Path | None:
    if not _has(results, "writers"):
        return None
    rows = results["items"]["writers"]["figures"]["writers"]
    counts = [int(c) for c in rows]
    figure, (rate_axis, time_axis) = plt.subplots(1, 2, figsize=(11, 3.8))
    rate_axis.plot(counts, [rows[str(c)]["rate"] for c in counts], "o-", color=OURS)
    rate_axis.axhline(0.7 * rows["1"]["rate"], color=FLOOR, linestyle=":", label="target: 0.7 x one writer")
    rate_axis.set_xticks(counts)
    rate_axis.set_ylim(bottom=0)
    rate_axis.set_xlabel("writer processes")
    rate_axis.set_ylabel("appends per second, all writers")
    rate_axis.legend(fontsize=8)
    rate_axis.set_title("aggregate rate", fontsize=10)
    waits = [rows[str(c)]["lock_wait_ms_mean"] for c in counts]
    works = [rows[str(c)]["work_ms_mean"] for c in counts]
    labels = [str(c) for c in counts]
    time_axis.bar(labels, works, color=OURS, label="work (append + COMMIT with fsync)")
    time_axis.bar(labels, waits, bottom=works, color=PEER, label="waiting for the write lock")
    time_axis.plot(labels, [rows[str(c)]["p99_ms"] for c in counts], "k^:", label="p99 of one append")
    time_axis.set_yscale("symlog", linthresh=10)
    time_axis.set_xlabel("writer processes")
    time_axis.set_ylabel("ms per append (mean)")
    time_axis.legend(fontsize=8)
    time_axis.set_title("where one append's time goes", fontsize=10)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    _stamp(figure, results, "writers")
    return _save(figure, out / "perf-writers.png")


def scaling(results: dict, out: Path) -> Path | None:
    if not _has(results, "scaling"):
        return None
    data = results["items"]["scaling"]["figures"]
    figure, (by_profiles, by_events) = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, labels, key, xlabel in ((by_profiles, data["by_profiles"], "profiles", "profiles (100k events)"),
                                      (by_events, data["by_events"], "events", "events in the log (1,000 profiles)")):
        x = [data["logs"][label][key] for label in labels]
        axis.plot(x, [data["boot_ms"][label]["median"] for label in labels], "o-", color=OURS,
                  label="hermes-state boot (process)")
        if "boot_cpu_ms" in data:
            axis.plot(x, [data["boot_cpu_ms"][label] for label in labels], "o:", color=OURS,
                      label="its CPU time (with its children)")
        axis.plot(x, [data["boot_pass_ms"][label] for label in labels], "s--", color=OURS,
                  label="boot's projection pass")
        axis.plot(x, [data["profile_status_ms"][label] for label in labels], "d-", color=PEER,
                  label="SELECT * FROM profile_status")
        if key == "events":
            axis.plot(x, [data["doctor_ms"][label] for label in labels], "x-", color="#cf222e",
                      label="hermes-state doctor (reads it all)")
            if "doctor_checkpoint_ms" in data:
                axis.plot(x, [data["doctor_checkpoint_ms"][label] for label in labels], "x:", color="#cf222e",
                          label="doctor from root's checkpoint")
        # A line that grows in proportion, for the eye.
        base = data["boot_pass_ms"][labels[0]]
        axis.plot(x, [base * v / x[0] for v in x], ":", color=FLOOR, label="proportional growth")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel(xlabel)
        axis.set_ylabel("ms (median)")
        axis.legend(fontsize=7)
    by_profiles.set_title("with the number of profiles", fontsize=10)
    by_events.set_title("with the length of the log", fontsize=10)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    _stamp(figure, results, "scaling")
    return _save(figure, out / "perf-scaling.png")


def hooks(results: dict, out: Path) -> Path | None:
    if not _has(results, "hooks"):
        return None
    rows = results["items"]["hooks"]["figures"]["hooks_ms"]
    latency = results["items"]["latency"]["figures"]["latency_ms"] if _has(results, "latency") else None
    figure, axes = plt.subplots(1, 2 if latency else 1, figsize=(11 if latency else 6, 3.6), squeeze=False)
    names = list(rows)[::-1]
    colours = [OURS if n.startswith("hermes") else FLOOR for n in names]
    axis = axes[0][0]
    axis.barh(names, [rows[n]["p50"] for n in names], color=colours, label="p50")
    axis.scatter([rows[n]["p95"] for n in names], names, marker="|", s=200, color="k", label="p95", zorder=3)
    for y, name in enumerate(names):
        axis.text(rows[name]["p95"], y, f"  p50 {rows[name]['p50']:.0f} ms", va="center", fontsize=8)
    axis.set_xlabel("wall time, process start to exit (ms)")
    axis.set_title("slot hooks against the alternatives", fontsize=10)
    axis.legend(fontsize=8)
    if latency:
        axis = axes[0][1]
        names = list(latency)
        axis.bar(names, [latency[n]["p50"] for n in names], color=[OURS, FLOOR], label="p50")
        axis.scatter(names, [latency[n]["p99"] for n in names], marker="_", s=400, color="k", label="p99", zorder=3)
        for x, name in enumerate(names):
            axis.text(x, latency[name]["p50"], f"p50 {latency[name]['p50']:.0f} ms", ha="center", va="bottom", fontsize=8)
        axis.set_yscale("log")
        axis.set_ylabel("event committed → slot up (ms)")
        axis.set_title("event-to-slot latency", fontsize=10)
        axis.legend(fontsize=8)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    _stamp(figure, results, "hooks")
    return _save(figure, out / "perf-hooks.png")


def memory(results: dict, out: Path) -> Path | None:
    if not _has(results, "memory"):
        return None
    data = results["items"]["memory"]["figures"]
    x = [s["events"] for s in data["samples"]]
    y = [s["rss_mb"] for s in data["samples"]]
    figure, axis = plt.subplots(figsize=(6, 3.6))
    axis.plot(x, y, "o-", color=OURS, label="watch daemon VmRSS")
    warm = data.get("warm_mb", data["start_mb"])  # after the first batch: SQLite's page cache filled
    axis.axhspan(warm * 0.95, warm * 1.05, color=OURS, alpha=0.1, label="first batch ± 5%")
    axis.axhline(80, color="#cf222e", linestyle=":", label="limit 80 MB")
    axis.set_ylim(0, 90)
    axis.set_xlabel("events passed through the daemon")
    axis.set_ylabel("resident MB")
    axis.legend(fontsize=8, loc="lower right")
    axis.set_title("watch daemon memory", fontsize=10)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    _stamp(figure, results, "memory")
    return _save(figure, out / "perf-memory.png")


def _has(results: dict, item: str) -> bool:
    return bool(results["items"].get(item, {}).get("figures"))


def _save(figure, path: Path) -> Path:
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def draw(results: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    drawn = [draw_one(results, out) for draw_one in (peers, writers, scaling, hooks, memory)]
    return [path for path in drawn if path is not None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="?", default=HERE / "results.json")
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs")
    args = parser.parse_args()
    for path in draw(json.loads(args.results.read_text()), args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
