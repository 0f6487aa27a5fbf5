"""Every sentence the collector shows a person, in Indonesian (`id`) and English (`en`).

Logs are for machines (structlog events in English); what a person reads at the terminal (config
problems, a payload that breaks the contract, a database that cannot be used) comes from here. Texts
are `str.format` templates. The language is `--lang`, else LANG (`id_ID.UTF-8` chooses Indonesian),
else English.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

Lang = Literal["id", "en"]
LANGS: tuple[Lang, ...] = ("id", "en")

_CHECK = "village-collector config check --config {file}"

MESSAGES: Mapping[str, Mapping[Lang, str]] = {
    "config.header": {
        "id": "Berkas konfigurasi {file} punya {count} masalah:",
        "en": "Configuration file {file} has {count} problem(s):",
    },
    "config.fix": {
        "id": "Perbaiki baris-baris itu, lalu cek lagi dengan: " + _CHECK,
        "en": "Fix these lines, then check again with: " + _CHECK,
    },
    "config.ok": {
        "id": "{file}: OK (broker {broker}, basis data {database}, HTTP {listen})",
        "en": "{file}: OK (broker {broker}, database {database}, HTTP {listen})",
    },
    "config.unreadable": {
        "id": "berkas tidak bisa dibaca: {error}",
        "en": "cannot read the file: {error}",
    },
    "config.not_utf8": {
        "id": "berkas ini bukan teks UTF-8",
        "en": "the file is not UTF-8 text",
    },
    "config.not_yaml": {
        "id": "{where}bukan YAML yang sah ({reason})",
        "en": "{where}not valid YAML ({reason})",
    },
    "config.duplicate": {
        "id": "Di baris {line}: kunci '{key}' muncul dua kali dalam satu bagian; simpan satu saja",
        "en": "At line {line}: key '{key}' appears twice in one section; keep one of them",
    },
    "config.missing_file": {
        "id": "Di '{key}': berkas {path} tidak ada",
        "en": "At '{key}': no such file {path}",
    },
    "config.open_secret": {
        "id": "Di '{key}': {path} bisa dibaca semua pengguna; jalankan: chmod 0640 {path}",
        "en": "At '{key}': {path} is readable by every user; run: chmod 0640 {path}",
    },
    "config.password_without_user": {
        "id": "Di 'broker.username': password_file diisi tetapi username tidak",
        "en": "At 'broker.username': a password_file is set but no username",
    },
    "config.tls_file_plain_url": {
        "id": "Di 'broker.url': ca_file diisi tetapi URL-nya mqtt://; pakai mqtts:// untuk enkripsi",
        "en": "At 'broker.url': ca_file is set but the URL is mqtt://; use mqtts:// to encrypt",
    },
    "decode.bad": {
        "id": "Payload tidak sesuai kontrak: {error}",
        "en": "The payload does not follow the contract: {error}",
    },
    "decode.empty": {
        "id": "Tidak ada data di stdin: kirim satu payload MQTT mentah, mis. "
        "mosquitto_sub -t 'desa/+/+/telemetry' -C 1 | village-collector decode",
        "en": "Nothing on standard input: pipe one raw MQTT payload in, e.g. "
        "mosquitto_sub -t 'desa/+/+/telemetry' -C 1 | village-collector decode",
    },
    "decode.bad_hex": {
        "id": "Baris {line} bukan heksadesimal (mode --hex: satu payload per baris, "
        "mosquitto_sub -F %x)",
        "en": "Line {line} is not hexadecimal (--hex mode: one payload per line, "
        "mosquitto_sub -F %x)",
    },
    "database.unusable": {
        "id": "Basis data {url} tidak bisa dipakai: {error}. Periksa database.url dan apakah "
        "servernya berjalan.",
        "en": "The database {url} cannot be used: {error}. Check database.url and that its "
        "server runs.",
    },
    "database.too_new": {
        "id": "Basis data {url} sudah skema versi {found}, collector ini hanya kenal sampai "
        "{known}: perbarui village-collector.",
        "en": "The database {url} is at schema version {found}; this collector knows up to "
        "{known}: upgrade village-collector.",
    },
    "http.unusable": {
        "id": "Alamat HTTP {listen} tidak bisa dipakai: {error}. Ubah http.listen.",
        "en": "Cannot listen for HTTP on {listen}: {error}. Change http.listen.",
    },
}


def default_lang(environ: Mapping[str, str] | None = None) -> Lang:
    """Indonesian when the locale says so (LANGUAGE, LC_ALL, LC_MESSAGES, LANG), else English."""
    env = os.environ if environ is None else environ
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name, "")
        if value:
            return "id" if value.lower().startswith(("id", "in_")) else "en"
    return "en"


def text(key: str, lang: Lang, /, **args: object) -> str:
    """The sentence `key` in `lang`, filled with `args`."""
    return MESSAGES[key][lang].format(**args)
