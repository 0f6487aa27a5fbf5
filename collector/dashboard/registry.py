"""The site registry (`sites_file`): a YAML list that names sites in human words.

    - site: kukar-tenggarong-01
      village: Tenggarong Seberang
      regency: Kutai Kartanegara
      lat: -0.4
      lon: 117.0
      contact: Pak Budi, 0812...

Only `site` is required. A site missing from the file still appears, under its id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

_KEYS = {"site", "village", "regency", "lat", "lon", "contact"}


class RegistryError(Exception):
    """The sites file cannot be used; the message names the entry and the key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteInfo:
    site: str
    village: str | None = None
    regency: str | None = None
    lat: float | None = None
    lon: float | None = None
    contact: str | None = None


def _text(entry: Mapping[str, object], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str | int):
        raise RegistryError(f"{where}: '{key}' should be text, got {value!r}")
    return str(value)


def _number(entry: Mapping[str, object], key: str, where: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RegistryError(f"{where}: '{key}' should be a number, got {value!r}")
    return float(value)


def parse_registry(source: str, file: Path) -> dict[str, SiteInfo]:
    """Site id -> its names. Raise RegistryError on the first entry that breaks the format."""
    try:
        raw = yaml.safe_load(source)
    except yaml.YAMLError as err:
        raise RegistryError(f"{file}: not valid YAML ({err})") from err
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise RegistryError(f"{file}: expected a list of sites")
    out: dict[str, SiteInfo] = {}
    for number, entry in enumerate(raw, 1):
        where = f"{file}, entry {number}"
        if not isinstance(entry, dict):
            raise RegistryError(f"{where}: expected a mapping with 'site'")
        unknown = sorted(set(map(str, entry)) - _KEYS)
        if unknown:
            raise RegistryError(f"{where}: unknown key(s) {', '.join(unknown)}")
        site = _text(entry, "site", where)
        if not site:
            raise RegistryError(f"{where}: 'site' is required")
        out[site] = SiteInfo(
            site=site,
            village=_text(entry, "village", where),
            regency=_text(entry, "regency", where),
            lat=_number(entry, "lat", where),
            lon=_number(entry, "lon", where),
            contact=_text(entry, "contact", where),
        )
    return out


def load_registry(file: Path | None) -> dict[str, SiteInfo]:
    """The registry in `file` (none: empty). Raise RegistryError if it cannot be used."""
    if file is None:
        return {}
    try:
        source = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RegistryError(f"{file}: cannot read the file ({err})") from err
    return parse_registry(source, file)
