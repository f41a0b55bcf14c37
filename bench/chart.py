"""Server-side chart of one year of one-minute data on SQLite: time to render vs the bare bucket query.

    .venv/bin/python bench/chart.py [--minutes 525600]

Loads the readings through store.write (the one write path), then times
``rollups.buckets`` alone and the whole chart (buckets + SVG) at 800 px, and
prints medians of 5 runs with their ratio. Target: under 300 ms (issue #5).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fieldstation import charts, create_app, manage, rollups, store
from fieldstation.buckets import auto_every
from fieldstation.dashboard import plots
from fieldstation.dashboard.ranges import Window
from fieldstation.points import Batch, Entry
from fieldstation.timeunits import US

WIDTH = 800
BATCH = 5000


def median_ms(func: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        func()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=int, default=525_600, help="readings, one a minute")
    parser.add_argument("--svg", type=Path, help="also write the year chart here, to look at")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FIELDSTATION_INSTANCE_PATH"] = tmp
        app = create_app(
            {
                "DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.db'}",
                "SECRET_KEY": "bench-secret-not-for-production-0123456789",
            }
        )
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
            user = manage.create_user("bench", "bench-password")
            channel = manage.create_channel(user, "year", fields=["temperature"])
            field = channel.fields[0]
            end = 1_767_225_600 * US  # 2026-01-01
            start = end - args.minutes * 60 * US
            began = time.perf_counter()
            for first in range(0, args.minutes, BATCH):
                entries = [
                    Entry({1: 10 + 10 * ((i % 1440) / 1440) + (i % 7) / 10}, ts=start + i * 60 * US)
                    for i in range(first, min(first + BATCH, args.minutes))
                ]
                store.write(Batch(channel.id, entries))
            load_s = time.perf_counter() - began
            print(f"loaded {args.minutes:,} readings through store.write in {load_s:.1f} s")

            zone = dt.UTC
            win = Window(start, end, None)
            every = auto_every(start, end, charts.POINTS_PER_PX * charts.plot_width(WIDTH))
            cold = median_ms(lambda: rollups.buckets(field.id, start, end, every), runs=1)
            bare = median_ms(lambda: rollups.buckets(field.id, start, end, every))
            chart = median_ms(lambda: plots.field_chart(field, win, zone, WIDTH))
            count = len(rollups.buckets(field.id, start, end, every))
            print(f"bucket width {every // US} s -> {count:,} buckets for {charts.plot_width(WIDTH)} px")
            print(f"first bucket query (builds rollups): {cold:.1f} ms")
            print(f"bare rollups.buckets: {bare:.1f} ms (median of 5)")
            print(f"whole chart (buckets + SVG): {chart:.1f} ms (median of 5), target < 300 ms")
            print(f"ratio chart / bare query: {chart / bare:.2f}")
            if args.svg:
                args.svg.write_text(plots.field_chart(field, win, zone, WIDTH))
            hour = median_ms(
                lambda: plots.field_chart(field, Window(end - 3600 * US, end, None), zone, WIDTH)
            )
            print(f"chart of the last hour (60 readings): {hour:.1f} ms; year / hour: {chart / hour:.2f}")


if __name__ == "__main__":
    main()
