#!/usr/bin/env bash
# gpu-check.sh — check lemctl's nvml energy plugin on a machine with an NVIDIA GPU.
#
# For a GPU machine where only the prebuilt bin/lemctl and bin/plugins/lem-plugin-nvml were copied
# (no Go, no network) and PyTorch and nvidia-ml-py (pynvml) are installed. It runs
#
#   lemctl measure --meter nvml --output json -- python3 load.py   (a ~60 s fp16 matmul load)
#
# while an independent pynvml monitor polls the same GPU, and prints:
#   1. plumbing: our energy vs the same counter read through pynvml, over the load's own window
#      (first/last line of the load) and over lemctl's window (the monitor's counter interpolated
#      at lemctl's start/end) — a check of units and window alignment, not of the hardware;
#   2. independence: the counter vs integrated instant power (NVML_FI_DEV_POWER_INSTANT, 186) over
#      the monitor's window — two different sources inside the GPU;
#   3. the counter update period observed (intervals between counter changes while polling);
#   4. the sampler's CPU share (the plugin process's schedstat over its life, and lemctl's own
#      overhead figure).
# Everything goes to an output directory (raw JSON + summary.md, ready for
# docs/hardware-validation.md). The script needs no network and writes nothing outside it.
#
# Usage: scripts/gpu-check.sh [--bin DIR] [--device N|UUID] [--duration S] [--interval D]
#                             [--set METER.KEY=VALUE]… [--out DIR] [--dry-run]
#   --bin       directory holding lemctl and plugins/ (default: ../bin next to this script, else ./bin)
#   --device    NVML index or GPU UUID of the GPU to load and measure (default 0)
#   --duration  seconds of matmul load (default 60)
#   --interval  the meter's sampling interval (default 100ms)
#   --set       passed to lemctl measure, e.g. --set nvml.library_path='"/usr/lib64/libnvidia-ml.so.1"'
#   --out       output directory (default ./gpu-check-<UTC timestamp>)
#   --dry-run   sleep instead of the PyTorch load (checks the script's plumbing without torch)
# Exit: 0 when every check ran (read the figures), 1 when a step failed, 2 on bad usage.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin=""
device="0"
duration="60"
interval="100ms"
out="./gpu-check-$(date -u +%Y%m%dT%H%M%SZ)"
dry=0
sets=()

die() { echo "gpu-check: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e 's/^# \{0,1\}//' -e '/^set -euo/d' >&2; exit 2; }

while [ $# -gt 0 ]; do
	case "$1" in
	--bin) bin="${2:?}"; shift 2 ;;
	--device) device="${2:?}"; shift 2 ;;
	--duration) duration="${2:?}"; shift 2 ;;
	--interval) interval="${2:?}"; shift 2 ;;
	--out) out="${2:?}"; shift 2 ;;
	--set) sets+=(--set "${2:?}"); shift 2 ;;
	--dry-run) dry=1; shift ;;
	-h|--help) usage ;;
	*) echo "gpu-check: unknown argument $1" >&2; usage ;;
	esac
done
if [ -z "$bin" ]; then
	if [ -x "$here/../bin/lemctl" ]; then bin="$here/../bin"; else bin="./bin"; fi
fi
lemctl="$bin/lemctl"
plugin="$bin/plugins/lem-plugin-nvml"
[ -x "$lemctl" ] || die "no executable $lemctl (use --bin DIR)"
[ -x "$plugin" ] || die "no executable $plugin (the plugin must sit in <dir of lemctl>/plugins)"
command -v python3 >/dev/null || die "python3 not found"
python3 -c 'import pynvml' 2>/dev/null || die "python3 cannot import pynvml (pip install nvidia-ml-py)"
if [ "$dry" = 0 ]; then
	python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null ||
		die "python3 cannot import torch with CUDA (or use --dry-run)"
fi
case "$duration" in ''|*[!0-9.]*) die "--duration must be a number of seconds" ;; esac

mkdir -p "$out/py"
out="$(cd "$out" && pwd)"
py="$out/py"

# ---------------------------------------------------------------------------------------------
cat >"$py/nvcommon.py" <<'PY'
"""Helpers shared by the gpu-check scripts (pynvml only)."""
import pynvml

FI_POWER_INSTANT = getattr(pynvml, "NVML_FI_DEV_POWER_INSTANT", 186)


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def handle(device):
    """An NVML handle from an index or a UUID."""
    if device.startswith("GPU-"):
        return pynvml.nvmlDeviceGetHandleByUUID(device)
    return pynvml.nvmlDeviceGetHandleByIndex(int(device))


def counter_mj(h):
    return pynvml.nvmlDeviceGetTotalEnergyConsumption(h)


def instant_w(h):
    """Instant power in W from field 186, or None when the driver lacks it."""
    try:
        v = pynvml.nvmlDeviceGetFieldValues(h, [FI_POWER_INSTANT])[0]
    except pynvml.NVMLError:
        return None
    if v.nvmlReturn != 0:
        return None
    return v.value.uiVal / 1000.0
PY

# ---------------------------------------------------------------------------------------------
cat >"$py/info.py" <<'PY'
"""Print the GPU's identity as JSON: the UUID the rest of the check uses."""
import json, sys, time
import pynvml
from nvcommon import handle, text

pynvml.nvmlInit()
h = handle(sys.argv[1])
info = {
    "uuid": text(pynvml.nvmlDeviceGetUUID(h)),
    "name": text(pynvml.nvmlDeviceGetName(h)),
    "driver": text(pynvml.nvmlSystemGetDriverVersion()),
    "date_utc": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
}
try:
    info["power_limit_w"] = pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0
except pynvml.NVMLError:
    pass
try:
    info["persistence_mode"] = bool(pynvml.nvmlDeviceGetPersistenceMode(h))
except pynvml.NVMLError:
    pass
json.dump(info, sys.stdout)
PY

# ---------------------------------------------------------------------------------------------
cat >"$py/load.py" <<'PY'
"""The measured command: reads the energy counter first thing, runs an fp16 matmul load, reads it
again after the last kernel finished. It never writes to stdout (lemctl's JSON goes there)."""
import json, os, sys, time

sys.stdout = sys.stderr
t0_wall, t0_mono = time.time_ns(), time.monotonic_ns()
uuid, duration, out, dry = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
# Our parent is lemctl measure: the monitor looks for the plugin among its children.
with open(os.path.join(os.path.dirname(out), "lemctl.pid"), "w") as f:
    f.write(str(os.getppid()))
import pynvml  # noqa: E402
from nvcommon import counter_mj, handle  # noqa: E402

pynvml.nvmlInit()
h = handle(uuid)
e0 = counter_mj(h)
t0_read = time.monotonic_ns()

flops = 0.0
if dry:
    time.sleep(duration)
else:
    import torch
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    torch.cuda.synchronize()
    end = time.monotonic() + duration
    while time.monotonic() < end:
        for _ in range(10):
            c = a @ b
        torch.cuda.synchronize()
        flops += 10 * 2.0 * n ** 3
    del c
e1 = counter_mj(h)
t1_mono, t1_wall = time.monotonic_ns(), time.time_ns()
json.dump({"e0_mj": e0, "e1_mj": e1, "start_mono_ns": t0_mono, "first_read_mono_ns": t0_read,
           "end_mono_ns": t1_mono, "start_unix_ns": t0_wall, "end_unix_ns": t1_wall,
           "flops": flops, "dry_run": dry}, open(out, "w"))
PY

# ---------------------------------------------------------------------------------------------
cat >"$py/monitor.py" <<'PY'
"""Independent monitor: polls the counter and instant power of one GPU as fast as it reasonably
can (every ~2 ms) until the stop file appears, and the plugin process's CPU time."""
import json, os, sys, time
import pynvml
from nvcommon import counter_mj, handle, instant_w

uuid, out, stop = sys.argv[1], sys.argv[2], sys.argv[3]
pidfile = os.path.join(os.path.dirname(out), "lemctl.pid")
pynvml.nvmlInit()
h = handle(uuid)


def find_plugin():
    """The lem-plugin-nvml process whose parent is our lemctl measure (its pid comes from the
    load, lemctl's child), so another lemctl's plugin on the machine is never taken for ours."""
    try:
        parent = open(pidfile).read().strip()
    except OSError:
        return None
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if open(f"/proc/{pid}/comm").read().strip() != "lem-plugin-nvml":
                continue
            stat = open(f"/proc/{pid}/stat").read()
            if stat[stat.rindex(")") + 2:].split()[1] == parent:
                return int(pid)
        except (OSError, ValueError, IndexError):
            pass
    return None


def cpu_ns(pid):
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                total += int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        return None
    return total


samples = []  # (mono_ns, unix_ns, counter_mj, instant_w or None)
plugin = {"pid": None, "first": None, "last": None}
next_proc = 0.0
while not os.path.exists(stop):
    e = counter_mj(h)
    m, w = time.monotonic_ns(), time.time_ns()
    samples.append((m, w, e, instant_w(h)))
    now = time.monotonic()
    if now >= next_proc:  # the plugin's CPU time, every 100 ms
        next_proc = now + 0.1
        if plugin["pid"] is None:
            plugin["pid"] = find_plugin()
        if plugin["pid"] is not None:
            c = cpu_ns(plugin["pid"])
            if c is not None:
                point = (time.monotonic_ns(), c)
                if plugin["first"] is None:
                    plugin["first"] = point
                plugin["last"] = point
    time.sleep(0.002)
json.dump({"samples": samples, "plugin": plugin}, open(out, "w"))
PY

# ---------------------------------------------------------------------------------------------
cat >"$py/report.py" <<'PY'
"""Compute and print the check's figures; write summary.json and summary.md."""
import bisect, json, os, statistics, sys

d = sys.argv[1]
info = json.load(open(os.path.join(d, "gpu.json")))
load = json.load(open(os.path.join(d, "load.json")))
mon = json.load(open(os.path.join(d, "monitor.json")))
try:
    meas = json.load(open(os.path.join(d, "measure.json")))
except (OSError, ValueError) as e:
    sys.exit(f"gpu-check: lemctl's JSON output is unreadable: {e}")

s = mon["samples"]
mono = [x[0] for x in s]
wall = [x[1] for x in s]
cnt = [x[2] for x in s]


def interp(xs, ys, x):
    """Linear interpolation of ys at x (clamped)."""
    i = bisect.bisect_left(xs, x)
    if i <= 0:
        return ys[0]
    if i >= len(xs):
        return ys[-1]
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def pct(a, b):
    return None if not b else (a - b) / b * 100


res = {"gpu": info, "dry_run": load.get("dry_run")}
dom = next((x for x in meas.get("domains", []) if str(x.get("id", "")).startswith("nvml:")), None)
if dom is None or not dom.get("available"):
    res["error"] = "lemctl reported no available nvml domain: " + json.dumps(dom or meas.get("domains"))
ours = dom.get("total_j") if dom else None
res["lemctl"] = {"energy_j": ours, "duration_s": meas.get("duration_s"), "mean_power_w": dom and dom.get("mean_power_w"),
                 "peak_power_w": dom and dom.get("peak_power_w"), "counter_updates": dom and dom.get("counter_updates"),
                 "method": dom and dom.get("method"), "health": dom and dom.get("health"),
                 "overhead": meas.get("overhead"), "exit_code": meas.get("exit_code")}

# 1. plumbing: the same counter through pynvml.
load_j = (load["e1_mj"] - load["e0_mj"]) / 1000.0
load_s = (load["end_mono_ns"] - load["start_mono_ns"]) / 1e9
mon_j = None
if meas.get("start_unix_ns") and meas.get("end_unix_ns"):
    mon_j = (interp(wall, cnt, meas["end_unix_ns"]) - interp(wall, cnt, meas["start_unix_ns"])) / 1000.0
res["plumbing"] = {"pynvml_load_window_j": load_j, "load_window_s": load_s,
                   "diff_vs_load_window_pct": pct(ours, load_j) if ours is not None else None,
                   "pynvml_lemctl_window_j": mon_j,
                   "diff_vs_lemctl_window_pct": pct(ours, mon_j) if ours is not None and mon_j else None}

# 2. counter vs integrated instant power over the monitor's span between counter changes.
changes = [i for i in range(1, len(s)) if cnt[i] != cnt[i - 1]]
indep = {"instant_power_available": all(x[3] is not None for x in s)}
if len(changes) >= 2 and indep["instant_power_available"]:
    a, b = changes[0], changes[-1]
    integ = sum((s[i][3] + s[i - 1][3]) / 2 * (mono[i] - mono[i - 1]) / 1e9 for i in range(a + 1, b + 1))
    cj = (cnt[b] - cnt[a]) / 1000.0
    indep.update({"counter_j": cj, "integrated_instant_j": integ, "span_s": (mono[b] - mono[a]) / 1e9,
                  "diff_pct": pct(cj, integ)})
res["counter_vs_instant"] = indep

# 3. counter update period: intervals between observed counter changes.
iv = [(mono[changes[k]] - mono[changes[k - 1]]) / 1e6 for k in range(1, len(changes))]
poll = [(mono[i] - mono[i - 1]) / 1e6 for i in range(1, len(mono))]
if iv:
    q = statistics.quantiles(iv, n=10) if len(iv) >= 10 else [min(iv)] * 9
    res["update_period_ms"] = {"median": statistics.median(iv), "p10": q[0], "p90": q[-1], "changes": len(changes),
                               "poll_median_ms": statistics.median(poll) if poll else None}

# 4. the sampler's CPU share.
p = mon["plugin"]
if p.get("first") and p.get("last") and p["last"][0] > p["first"][0]:
    res["plugin_cpu"] = {"pid": p["pid"], "cpu_s": (p["last"][1] - p["first"][1]) / 1e9,
                         "wall_s": (p["last"][0] - p["first"][0]) / 1e9,
                         "share_pct": (p["last"][1] - p["first"][1]) / (p["last"][0] - p["first"][0]) * 100}

json.dump(res, open(os.path.join(d, "summary.json"), "w"), indent=2)


def f(v, fmt="{:.3f}"):
    return "n/a" if v is None else fmt.format(v)


pl, ci, up, pc, lc = res["plumbing"], res["counter_vs_instant"], res.get("update_period_ms", {}), res.get("plugin_cpu", {}), res["lemctl"]
ov = lc.get("overhead") or {}
lines = [
    f"GPU {info['name']} ({info['uuid']}), driver {info['driver']}, {info['date_utc']}" + ("  [DRY RUN: no load]" if res["dry_run"] else ""),
    f"lemctl measure: {f(ours)} J over {f(lc['duration_s'])} s, method {lc['method']}, mean {f(lc['mean_power_w'], '{:.1f}')} W,"
    f" peak {f(lc['peak_power_w'], '{:.1f}')} W, {lc['counter_updates']} counter updates, exit {lc['exit_code']}",
    f"1. plumbing   pynvml counter over the load's window: {f(load_j)} J over {f(load_s)} s -> ours {f(pl['diff_vs_load_window_pct'], '{:+.2f}')} %",
    f"              pynvml counter over lemctl's window:   {f(mon_j)} J -> ours {f(pl['diff_vs_lemctl_window_pct'], '{:+.2f}')} %",
    f"2. counter vs integrated instant power: {f(ci.get('counter_j'))} J vs {f(ci.get('integrated_instant_j'))} J over "
    f"{f(ci.get('span_s'))} s -> {f(ci.get('diff_pct'), '{:+.2f}')} %" + ("" if ci["instant_power_available"] else " (no instant power field)"),
    f"3. counter update period: median {f(up.get('median'), '{:.1f}')} ms (p10 {f(up.get('p10'), '{:.1f}')}, p90 {f(up.get('p90'), '{:.1f}')};"
    f" {up.get('changes')} changes, polled every {f(up.get('poll_median_ms'), '{:.1f}')} ms)",
    f"4. sampler CPU: plugin process {f(pc.get('cpu_s'))} s over {f(pc.get('wall_s'), '{:.1f}')} s = {f(pc.get('share_pct'), '{:.3f}')} % of one core;"
    f" lemctl's overhead figure: {json.dumps(ov)}",
]
if "error" in res:
    lines.append("ERROR: " + res["error"])
for h in (lc.get("health") or []):
    lines.append(f"   finding: {h}")
print("\n".join(lines))
with open(os.path.join(d, "summary.md"), "w") as fh:
    fh.write("\n".join("    " + l for l in lines) + "\n")
sys.exit(1 if "error" in res else 0)
PY

# ---------------------------------------------------------------------------------------------
cd "$py"
python3 info.py "$device" >"$out/gpu.json" || die "cannot read GPU $device through pynvml"
uuid="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["uuid"])' "$out/gpu.json")"
echo "gpu-check: GPU $uuid; results in $out" >&2
export CUDA_VISIBLE_DEVICES="$uuid"

rm -f "$out/stop"
python3 monitor.py "$uuid" "$out/monitor.json" "$out/stop" &
mon=$!
trap 'touch "$out/stop"; wait "$mon" 2>/dev/null || true' EXIT
sleep 2 # the monitor's idle lead-in

set +e
"$lemctl" measure --meter nvml --interval "$interval" "${sets[@]}" --output json -- \
	python3 "$py/load.py" "$uuid" "$duration" "$out/load.json" "$dry" \
	>"$out/measure.json" 2>"$out/measure.stderr"
rc=$?
set -e
sleep 1
touch "$out/stop"
wait "$mon" || die "the monitor failed"
trap - EXIT
[ "$rc" = 0 ] || { tail -n 20 "$out/measure.stderr" >&2; die "lemctl measure exited $rc (stderr in $out/measure.stderr)"; }
[ -s "$out/load.json" ] || die "the load wrote no result"
python3 "$py/report.py" "$out"
