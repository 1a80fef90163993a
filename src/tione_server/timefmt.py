"""Task time strings: rendering (`YYYY-MM-DDTHH:MM:SS+08`, spec §1.3) and parsing the shapes real responses use."""

from __future__ import annotations

import re
import time
from datetime import date
from functools import lru_cache

# re.ASCII: without it \d also matches digits such as "２" and "٣", which int() then reads as numbers.
_SHAPE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.\d+)?\s*(Z|[+-]\d\d(?::?\d\d)?)?$", re.ASCII)


@lru_cache(maxsize=65536)
def render(ts: int | None, offset_hours: int) -> str:
    """Unix seconds -> `YYYY-MM-DDTHH:MM:SS+HH` in the configured offset; None -> "".

    time.strftime over time.gmtime, memoised: the list renders four per item, mostly of the same tasks.
    """
    if ts is None:
        return ""
    t = time.gmtime(ts + offset_hours * 3600)
    if t.tm_year > 9999:
        raise ValueError(f"{ts} is past year 9999 at offset {offset_hours}")
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + _suffix(offset_hours)


def _suffix(offset_hours: int) -> str:
    return f"{'+' if offset_hours >= 0 else '-'}{abs(offset_hours):02d}"


def parse(text: str, default_offset_hours: int) -> int | None:
    """Parse any time shape TI-ONE responses use; "" -> None. A string without an offset is read in
    `default_offset_hours` (the list examples show Beijing wall clock). Raises ValueError otherwise."""
    text = text.strip()
    if not text:
        return None
    m = _SHAPE.match(text)
    if not m:
        raise ValueError(f"`{text}` is not a time such as 2025-05-28T18:18:33+08")
    year, month, day, hour, minute, second = map(int, m.groups()[:6])
    zone = m.group(7)
    if zone is None:
        offset = default_offset_hours * 3600
    elif zone == "Z":
        offset = 0
    else:
        digits = zone[1:].replace(":", "")
        offset = (int(digits[:2]) * 60 + (int(digits[2:]) if len(digits) > 2 else 0)) * 60
        offset = -offset if zone[0] == "-" else offset
    if abs(offset) >= 86400 or hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"`{text}` is not a valid time")
    # Arithmetic on the proleptic day number (date() still rejects 2025-02-30): imports parse four per task.
    days = date(year, month, day).toordinal() - _EPOCH_DAY
    return days * 86400 + hour * 3600 + minute * 60 + second - offset


_EPOCH_DAY = date(1970, 1, 1).toordinal()
