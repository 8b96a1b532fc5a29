"""Benchmark of ``notifier orders import``: rows per second and peak memory of the real CLI.

Generates N orders (default 100,000) as CSV in a temporary folder -- about 1.3 shipments per
order (an order with two parcels is two rows with the same order id), numbers from
``carriers.numbers.generate`` (a few with a failed check digit, as real files have), several
locales and time zones -- then times ``python -m notifier orders import FILE`` as a subprocess
against a fresh database, for N and for N/4, so memory can be seen to stay flat in N. Peak RSS
is the child's ``ru_maxrss`` (each run happens in its own short-lived helper process so the
figure is that import's alone). The last line is ``RESULT rows_per_s=... peak_rss_mb=...`` for
the N run. Usage: ``python bench/import_orders.py [N] [--seed S] [--keep]``.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from carriers import detect, numbers  # noqa: E402

TARGET_ROWS_PER_S = 20_000
CUSTOMERS = (  # (locale, time zone)
    ("en", "America/New_York"), ("en_US", "America/Los_Angeles"), ("en_GB", "Europe/London"),
    ("fr", "Europe/Paris"), ("de_AT", "Europe/Vienna"), ("de", "Europe/Berlin"),
    ("es", "Europe/Madrid"), ("ja", "Asia/Tokyo"), ("pt_BR", "America/Sao_Paulo"),
    ("en_AU", "Australia/Sydney"),
)
CARRIERS = ("ups", "ups", "fedex", "fedex", "usps", "dhl")
STATUSES = ("", "", "", "processing", "received")


def _failing(carrier: str, number: str, rng: random.Random) -> str:
    """``number`` with a failed check digit but still shaped like a ``carrier`` number
    (``corrupt`` may also hit a fixed prefix digit, e.g. the 1 of 1Z, which makes the row
    rejected rather than warned about)."""
    while True:
        bad = numbers.corrupt(number, rng)
        if detect.plausible(carrier, bad):
            return bad


def write_orders(path: Path, n: int, seed: int) -> int:
    """Write ``n`` orders (about 1.3 rows each) to ``path``; return the number of data rows."""
    rng = random.Random(seed)
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["order", "email", "name", "locale", "tz", "promised", "carrier",
                      "tracking", "status"])
        for i in range(n):
            oid = f"SO-{seed}-{i:07d}"
            locale, tz = rng.choice(CUSTOMERS)
            promised = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            status = rng.choice(STATUSES)
            parcels = 1 if rng.random() < 0.7 else 2  # 0.7 * 1 + 0.3 * 2 = 1.3 per order
            for _ in range(parcels):
                carrier = rng.choice(CARRIERS)
                number = numbers.generate(carrier, rng)
                if rng.random() < 0.01:  # real files carry a few numbers failing the check
                    number = _failing(carrier, number, rng)
                out.writerow([oid, f"customer{i}@example.com", f"Customer {i}", locale, tz,
                              promised, carrier, number, status])
                rows += 1
    return rows


def config_for(folder: Path) -> Path:
    """The repository config with the database in ``folder`` and the API server off."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^path = "notifier.sqlite3".*$', 'path = "bench.sqlite3"', text)
    text = text.replace("[api]\n", "[api]\nenabled = false\n", 1)
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _measure(data: Path, config: Path, out: Path) -> None:
    """Runs in a forked helper: import once, write 'seconds rss_kb returncode' to ``out``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("NOTIFIER_CONFIG", None)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "notifier", "orders", "import", str(data), "--config",
         str(config)], env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-2000:])
    sys.stdout.write(proc.stdout)
    out.write_text(f"{seconds} {rss_kb} {proc.returncode}", encoding="utf-8")


def run_import(data: Path, folder: Path) -> tuple[float, float, int]:
    """(seconds, peak RSS in MiB, exit status) of one import into a fresh database."""
    for old in folder.glob("bench.sqlite3*"):
        old.unlink()
    config = config_for(folder)
    out = folder / "measure.txt"
    # RUSAGE_CHILDREN is the maximum over every child ever waited for, so each measurement
    # runs in a fresh forked helper whose only child is the import.
    pid = os.fork()
    if pid == 0:
        try:
            _measure(data, config, out)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    seconds, rss_kb, code = out.read_text(encoding="utf-8").split()
    return float(seconds), int(rss_kb) / 1024, int(code)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=100_000, help="orders (default 100000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="notifier-bench-"))
    results = []
    try:
        for n in (args.n // 4, args.n):
            data = folder / f"orders-{n}.csv"
            t0 = time.perf_counter()
            rows = write_orders(data, n, args.seed)
            print(f"generated {n} orders / {rows} rows ({data.stat().st_size / 1e6:.1f} MB) "
                  f"in {time.perf_counter() - t0:.1f}s")
            seconds, rss_mb, code = run_import(data, folder)
            if code != 0:
                print(f"import of {n} orders exited {code}", file=sys.stderr)
                return 1
            rate = rows / seconds
            results.append((n, rows, seconds, rate, rss_mb))
            print(f"N={n}: {rows} rows in {seconds:.2f}s = {rate:,.0f} rows/s, "
                  f"peak RSS {rss_mb:.1f} MiB")
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            for p in sorted(folder.glob("*"), reverse=True):
                p.unlink()
            folder.rmdir()
    (n_small, *_, rss_small), (n, rows, seconds, rate, rss) = results
    print(f"memory: {rss_small:.1f} MiB at N={n_small}, {rss:.1f} MiB at N={n} "
          f"(x{rss / rss_small:.2f} for x{n / max(n_small, 1):.0f} the rows)")
    verdict = "met" if rate >= TARGET_ROWS_PER_S else "MISSED"
    print(f"target {TARGET_ROWS_PER_S:,} rows/s: {verdict}")
    print(f"RESULT rows_per_s={rate:.0f} peak_rss_mb={rss:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
