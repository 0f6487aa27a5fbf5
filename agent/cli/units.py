"""Numbers as a person reads them on a console: the only place the CLI formats a quantity."""

from __future__ import annotations


def human_bytes(count: float) -> str:
    """1023 B, 1.5 KiB, 23.5 GiB: never 2.52762e+10."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    value = float(count)
    for unit in units[:-1]:
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} {units[-1]}"


def plain_number(value: float) -> str:
    """Whole numbers in full (25276200000), fractions to four significant digits (0.0123)."""
    if float(value).is_integer() and abs(value) < 1e18:
        return str(int(value))
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"


def reading_value(metric: str, value: float) -> str:
    """A reading's value for the console: byte counts in binary units, the rest as plain numbers.
    Metric names end in their unit (`throughput.rx_bytes_total`), so the name says which."""
    if metric.endswith(("_bytes", "_bytes_total")):
        return human_bytes(value)
    return plain_number(value)
