"""Time from sign-in to a rendered list of 50 rows in the web console (issue 11 "Must show"), in headless Chromium.

    python -m bench.console DATABASE_URL [DATABASE_URL ...]

Each database (a bench database of bench/databases.py, whose measured account is 100000000001 in ap-guangzhou)
is served by a fresh `tione-server serve`; a key is created for that account; the browser signs in three times and
the console's own `signin-to-list` performance measure (sign-in click to the first page rendered) is printed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from selenium.webdriver.common.by import By

from bench.dataset import MAIN
from tests.browser import chromium, sign_in, wait
from tests.live import running_server

RUNS = 3


def measure(database_url: str) -> list[float]:
    """Milliseconds from sign-in to 50 rendered rows, RUNS times, against one database."""
    with tempfile.TemporaryDirectory() as tmp, running_server(database_url, Path(tmp), uin=MAIN.uin) as srv:
        total = srv.call("DescribeTrainingTasks", {"Limit": 1})["TotalCount"]
        times: list[float] = []
        with chromium() as driver:
            for _ in range(RUNS):
                sign_in(driver, srv)
                wait(lambda: len(driver.find_elements(By.CSS_SELECTOR, "table.tasks tbody tr")) == 50, timeout=60)
                ms = wait(lambda: driver.execute_script(
                    "const m = performance.getEntriesByName('signin-to-list'); return m.length ? m[0].duration : null"
                ), timeout=60)  # fmt: skip
                times.append(float(ms))
        print(f"{database_url}: {total} tasks, sign-in to 50 rows: {', '.join(f'{t:.0f}' for t in times)} ms")
        return times


def main() -> int:
    """Measure every database named on the command line."""
    for url in sys.argv[1:]:
        measure(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
