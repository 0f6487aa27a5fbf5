"""Every word a configuration problem is told in, Indonesian and English, by key.

A problem is a `Said`: a `str` holding its English text, so that code and logs that treat problems
as text keep working, which also remembers its key and arguments to be told again in Indonesian
(`in_lang`). Arguments that are themselves `Said` (a described value, a nested problem) are told
in the same language. Nothing here imports more than the standard library and `agent.lang`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.lang import Lang

MESSAGES: Mapping[str, Mapping[Lang, str]] = {
    # -- the report around the problems -------------------------------------------------------------
    "config.header": {
        "id": "Berkas konfigurasi {file} punya {n} masalah:",
        "en": "Configuration file {file} has {n} problem(s):",
    },
    "config.footer": {
        "id": "Perbaiki baris-baris ini, lalu periksa lagi dengan: village-agent config check FILE",
        "en": "Fix these lines, then check again with: village-agent config check FILE",
    },
    "config.at": {"id": "Di '{path}': {message}", "en": "At '{path}': {message}"},
    # -- values as a technician reads them -----------------------------------------------------------
    "value.nothing": {"id": "kosong", "en": "nothing"},
    "value.bool": {"id": "{value} (nilai ya/tidak)", "en": "{value} (a yes/no value)"},
    "value.list": {"id": "sebuah daftar", "en": "a list"},
    "value.mapping": {"id": "sebuah kumpulan pengaturan", "en": "a mapping"},
    "value.huge": {"id": "angka sekitar {n} digit", "en": "a number of about {n} digits"},
    "kind.text": {"id": "teks", "en": "text"},
    "kind.path": {"id": "path berkas atau direktori", "en": "a file or directory path"},
    # -- what a value must be ------------------------------------------------------------------------
    "expect.mapping": {
        "id": "harus berupa kumpulan pengaturan, bukan {got}",
        "en": "expected a mapping of settings, got {got}",
    },
    "expect.top_mapping": {
        "id": "bagian atas harus berupa kumpulan pengaturan, bukan {got}",
        "en": "expected a mapping of settings at the top, got {got}",
    },
    "expect.choice": {
        "id": "harus salah satu dari {choices}, bukan {got}",
        "en": "expected one of {choices}, got {got}",
    },
    "expect.list": {"id": "harus berupa daftar, bukan {got}", "en": "expected a list, got {got}"},
    "expect.bool": {
        "id": "harus true atau false, bukan {got}",
        "en": "expected true or false, got {got}",
    },
    "expect.int": {
        "id": "harus bilangan bulat dalam ±{limit}, bukan {got}",
        "en": "expected a whole number within ±{limit}, got {got}",
    },
    "expect.number": {
        "id": "harus angka dalam ±{limit}, bukan {got}",
        "en": "expected a number within ±{limit}, got {got}",
    },
    "expect.kind": {"id": "harus {kind}, bukan {got}", "en": "expected {kind}, got {got}"},
    "key.unknown": {
        "id": "kunci tidak dikenal{hint} (yang dikenal di sini: {known})",
        "en": "unknown key{hint} (known here: {known})",
    },
    "key.did_you_mean": {"id": "; maksudnya '{name}'?", "en": "; did you mean '{name}'?"},
    "key.missing": {"id": "kunci wajib tidak ada", "en": "required key is missing"},
    "key.twice": {
        "id": "Di baris {line}: kunci {key} muncul dua kali dalam satu bagian; simpan salah satunya",
        "en": "At line {line}: key {key} appears twice in one section; keep one of them",
    },
    "text.surrogate": {
        "id": "{value} bukan teks UTF-8 yang sah (ada surrogate tunggal)",
        "en": "{value} is not valid UTF-8 text (it holds a lone surrogate)",
    },
    "text.control": {
        "id": "{value} berisi karakter kontrol (NUL, baris baru, tab, ...): hapus",
        "en": "{value} holds a control character (NUL, newline, tab, ...): remove it",
    },
    "text.long": {
        "id": "{value} panjangnya {size} byte; paling banyak {max} muat di sini",
        "en": "{value} is {size} bytes long; at most {max} fit here",
    },
    "number.positive": {
        "id": "harus lebih dari 0, bukan {value}",
        "en": "must be greater than 0, got {value}",
    },
    "number.at_least": {
        "id": "paling sedikit {low}, bukan {value}",
        "en": "must be at least {low}, got {value}",
    },
    "number.between": {
        "id": "harus antara {low} dan {high}, bukan {value}",
        "en": "must be between {low} and {high}, got {value}",
    },
    # -- the settings' own rules ---------------------------------------------------------------------
    "site_id.invalid": {
        "id": "{value} bukan site id yang sah: pakai huruf kecil, angka dan tanda hubung"
        " (menjadi bagian topik MQTT), mis. kukar-tenggarong-01",
        "en": "{value} is not a valid site id: use lower-case letters, digits and dashes"
        " (it becomes part of MQTT topics), e.g. kukar-tenggarong-01",
    },
    "client_id.long": {
        "id": "paling banyak {max} byte muat dalam client id MQTT",
        "en": "at most {max} bytes fit in an MQTT client id",
    },
    "url.not_url": {
        "id": "{value} bukan URL, mis. mqtts://collector.example.id:8883",
        "en": "{value} is not a URL, e.g. mqtts://collector.example.id:8883",
    },
    "url.scheme": {
        "id": "URL harus diawali mqtt:// atau mqtts://, bukan {value}",
        "en": "expected a URL starting with mqtt:// or mqtts://, got {value}",
    },
    "url.no_host": {
        "id": "URL {value} tidak menyebut host, mis. mqtts://collector.example.id:8883",
        "en": "the URL {value} names no host, e.g. mqtts://collector.example.id:8883",
    },
    "url.port": {
        "id": "port dalam {value} bukan angka antara 1 dan 65535",
        "en": "the port in {value} is not a number between 1 and 65535",
    },
    "url.credentials": {
        "id": "jangan taruh user atau password di URL: pakai broker.username dan"
        " broker.password_file",
        "en": "put no user or password in the URL: use broker.username and broker.password_file",
    },
    "url.http": {
        "id": "harus URL http:// atau https:// dengan host, bukan {value}",
        "en": "expected an http:// or https:// URL with a host, got {value}",
    },
    "schema.payload": {
        "id": "harus 1 atau 2 (susunan payload telemetri), bukan {value}",
        "en": "expected 1 or 2 (the telemetry payload layouts), got {value}",
    },
    "topic.levels": {
        "id": "{value} tidak bisa dipakai sebagai awalan topik: tanpa '#', '+', level kosong"
        " atau '//'",
        "en": "{value} is not a usable topic prefix: no '#', '+', empty levels or '//'",
    },
    "topic.dollar": {
        "id": "{value} tidak bisa dipakai sebagai awalan topik: tidak boleh ada level yang"
        " diawali '$'",
        "en": "{value} is not a usable topic prefix: no level may start with '$'",
    },
    # -- the collector's own settings ----------------------------------------------------------------
    "group.invalid": {
        "id": "{value} tidak bisa dipakai sebagai nama grup: hanya huruf, angka, '_', '-', '.'",
        "en": "{value} is not a usable group name: letters, digits, '_', '-', '.' only",
    },
    "database.no_file": {
        "id": "{value} tidak menyebut berkas: sqlite:///path/berkas",
        "en": "{value} names no file: sqlite:///path/file",
    },
    "database.scheme": {
        "id": "harus sqlite:///path/ke/berkas.sqlite atau postgresql://user@host/dbname, bukan"
        " {value}",
        "en": "expected sqlite:///path/to/file.sqlite or postgresql://user@host/dbname, got"
        " {value}",
    },
    "listen.invalid": {
        "id": "harus HOST:PORT (mis. 127.0.0.1:8080) atau off, bukan {value}",
        "en": "expected HOST:PORT (e.g. 127.0.0.1:8080) or off, got {value}",
    },
    "value.cut": {
        "id": "{text}... ({n} karakter)",
        "en": "{text}... ({n} characters)",
    },
    # -- files the settings name ---------------------------------------------------------------------
    "file.missing": {"id": "tidak ada berkas {path}", "en": "no such file {path}"},
    "file.unreadable": {
        "id": "tidak bisa membaca {path}: {error}; periksa path dan izinnya",
        "en": "cannot read {path}: {error}; check the path and permissions",
    },
    "file.world_readable": {
        "id": "{path} bisa dibaca semua pengguna gateway; jalankan: chmod 0640 {path}",
        "en": "{path} is readable by every user on the gateway; run: chmod 0640 {path}",
    },
    "password.binary": {
        "id": "{path} bukan password (biner, atau lebih dari 65.535 byte)",
        "en": "{path} is not a password (binary, or over 65,535 bytes)",
    },
    "password.utf8": {"id": "{path} bukan teks UTF-8", "en": "{path} is not UTF-8 text"},
    "client_key.encrypted": {
        "id": "{path} dienkripsi dengan passphrase, yang tidak bisa diketik oleh layanan;"
        " dekripsi sekali: openssl pkey -in {path} -out {path}.plain",
        "en": "{path} is encrypted with a passphrase, which a service cannot type; decrypt it"
        " once: openssl pkey -in {path} -out {path}.plain",
    },
    "password.plaintext": {
        "id": "lewat mqtt:// password melintasi jaringan tanpa enkripsi; pakai mqtts://, atau"
        " set broker.allow_plaintext: true untuk menerimanya",
        "en": "over mqtt:// the password crosses the network in clear text; use mqtts://, or"
        " set broker.allow_plaintext: true to accept that",
    },
    "cert.needs_key": {
        "id": "sertifikat klien perlu broker.key_file juga",
        "en": "a client certificate needs broker.key_file too",
    },
    "tls.files_without_tls": {
        "id": "berkas TLS diisi tetapi URL-nya mqtt://; pakai mqtts:// untuk enkripsi",
        "en": "TLS files are set but the URL is mqtt://; use mqtts:// to encrypt",
    },
    "username.missing": {
        "id": "password_file diisi tetapi username tidak",
        "en": "a password_file is set but no username",
    },
    "reconnect.order": {
        "id": "tidak boleh melebihi broker.reconnect_max_s",
        "en": "must not exceed broker.reconnect_max_s",
    },
    "loss_window.short": {
        "id": "paling sedikit latency.count ({count}), bukan {value}",
        "en": "must be at least latency.count ({count}), got {value}",
    },
    "speedtest.no_url": {
        "id": "speed test diaktifkan tetapi tidak punya URL",
        "en": "speed tests are enabled but have no URL",
    },
    # -- the file as a whole -------------------------------------------------------------------------
    "yaml.invalid": {
        "id": "{where}bukan YAML yang sah ({reason})",
        "en": "{where}not valid YAML ({reason})",
    },
    "yaml.where": {"id": "baris {line}, kolom {column}: ", "en": "line {line}, column {column}: "},
    "yaml.long_number": {
        "id": "YAML tidak bisa dipakai (ada angka yang terlalu panjang untuk dibaca)",
        "en": "not usable YAML (a number too long to read)",
    },
    "yaml.deep": {
        "id": "bersarang terlalu dalam untuk sebuah konfigurasi",
        "en": "nested too deeply to be a configuration",
    },
    "file.cannot_read": {
        "id": "tidak bisa membaca berkas: {error}",
        "en": "cannot read the file: {error}",
    },
    "file.too_big": {
        "id": "berkas lebih besar dari {max} byte: bukan konfigurasi",
        "en": "the file is larger than {max} bytes: not a config",
    },
    "file.not_utf8": {"id": "berkas bukan teks UTF-8", "en": "the file is not UTF-8 text"},
}


def _told(value: object, lang: Lang) -> object:
    return value.in_lang(lang) if isinstance(value, Said) else value


class Said(str):
    """A message of MESSAGES: its English text, and its key and arguments to tell it again."""

    key: str
    args: dict[str, Any]

    def __new__(cls, key: str, /, **args: Any) -> Said:
        english = MESSAGES[key]["en"].format(**{k: _told(v, "en") for k, v in args.items()})
        said = super().__new__(cls, english)
        said.key = key
        said.args = args
        return said

    def __getnewargs_ex__(self) -> tuple[tuple[str], dict[str, Any]]:
        # copy and pickle make a Said again from its key and arguments, not from its text.
        return (self.key,), self.args

    def in_lang(self, lang: Lang) -> str:
        return MESSAGES[self.key][lang].format(**{k: _told(v, lang) for k, v in self.args.items()})


def told(problem: str, lang: Lang) -> str:
    """A problem in `lang`: a `Said` in that language; any other text as it is."""
    return problem.in_lang(lang) if isinstance(problem, Said) else problem


def at(path: str, message: str) -> Said:
    """A problem at a key of the file: "At 'broker.url': ..."."""
    return Said("config.at", path=path, message=message)
