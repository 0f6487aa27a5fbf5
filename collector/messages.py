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
    "dash.title": {
        "id": "Dasbor jaringan desa",
        "en": "Village network dashboard",
    },
    "dash.overview": {
        "id": "Ringkasan",
        "en": "Overview",
    },
    "dash.site": {
        "id": "Lokasi",
        "en": "Site",
    },
    "dash.village": {
        "id": "Desa",
        "en": "Village",
    },
    "dash.regency": {
        "id": "Kabupaten",
        "en": "Regency",
    },
    "dash.no_regency": {
        "id": "Kabupaten belum diketahui",
        "en": "Regency not known",
    },
    "dash.state": {
        "id": "Keadaan",
        "en": "State",
    },
    "dash.since": {
        "id": "Sejak",
        "en": "Since",
    },
    "dash.age": {
        "id": "Data terakhir",
        "en": "Last reading",
    },
    "dash.latency": {
        "id": "RTT (ms)",
        "en": "RTT (ms)",
    },
    "dash.loss": {
        "id": "Hilang (%)",
        "en": "Loss (%)",
    },
    "dash.rx": {
        "id": "↓ bit/s",
        "en": "↓ bit/s",
    },
    "dash.tx": {
        "id": "↑ bit/s",
        "en": "↑ bit/s",
    },
    "dash.throughput": {
        "id": "Lalu lintas (bit/s)",
        "en": "Throughput (bit/s)",
    },
    "dash.avail": {
        "id": "Ketersediaan",
        "en": "Availability",
    },
    "dash.avail_24h": {
        "id": "Tersedia 24j",
        "en": "Avail. 24 h",
    },
    "dash.avail_7d": {
        "id": "Tersedia 7h",
        "en": "Avail. 7 d",
    },
    "dash.avail_30d": {
        "id": "Tersedia 30h",
        "en": "Avail. 30 d",
    },
    "dash.backlog": {
        "id": "Antrean",
        "en": "Backlog",
    },
    "dash.dropped": {
        "id": "Dibuang",
        "en": "Dropped",
    },
    "dash.health": {
        "id": "Kesehatan",
        "en": "Health",
    },
    "dash.undervoltage": {
        "id": "Tegangan kurang",
        "en": "Under-voltage",
    },
    "dash.disk_full": {
        "id": "Disk hampir penuh",
        "en": "Disk nearly full",
    },
    "dash.hot": {
        "id": "Terlalu panas",
        "en": "Too hot",
    },
    "dash.ok": {
        "id": "baik",
        "en": "ok",
    },
    "dash.filter": {
        "id": "Saring lokasi…",
        "en": "Filter sites…",
    },
    "dash.state.online": {
        "id": "daring",
        "en": "online",
    },
    "dash.state.offline": {
        "id": "luring",
        "en": "offline",
    },
    "dash.state.no_data": {
        "id": "belum ada data",
        "en": "no data",
    },
    "dash.counts": {
        "id": "{total} lokasi: {offline} luring, {online} daring, {no_data} tanpa data",
        "en": "{total} sites: {offline} offline, {online} online, {no_data} without data",
    },
    "dash.ago_s": {
        "id": "{n} dtk lalu",
        "en": "{n} s ago",
    },
    "dash.ago_m": {
        "id": "{n} mnt lalu",
        "en": "{n} min ago",
    },
    "dash.ago_h": {
        "id": "{n} jam lalu",
        "en": "{n} h ago",
    },
    "dash.ago_d": {
        "id": "{n} hari lalu",
        "en": "{n} d ago",
    },
    "dash.never": {
        "id": "tidak pernah",
        "en": "never",
    },
    "dash.range": {
        "id": "Rentang",
        "en": "Range",
    },
    "dash.range.24h": {
        "id": "24 jam",
        "en": "24 hours",
    },
    "dash.range.7d": {
        "id": "7 hari",
        "en": "7 days",
    },
    "dash.range.30d": {
        "id": "30 hari",
        "en": "30 days",
    },
    "dash.version": {
        "id": "Versi agen",
        "en": "Agent version",
    },
    "dash.config": {
        "id": "Hash konfigurasi",
        "en": "Config hash",
    },
    "dash.confirmed": {
        "id": "Tersimpan lengkap sampai",
        "en": "Confirmed through",
    },
    "dash.confirmed_value": {
        "id": "seq {seq} (epoch {epoch})",
        "en": "seq {seq} (epoch {epoch})",
    },
    "dash.confirm_gaps": {
        "id": "{n} celah sedang diperbaiki",
        "en": "{n} gap(s) being repaired",
    },
    "dash.confirm_given_up": {
        "id": "{n} bacaan dilepas",
        "en": "{n} reading(s) given up",
    },
    "dash.contact": {
        "id": "Kontak",
        "en": "Contact",
    },
    "dash.position": {
        "id": "Posisi",
        "en": "Position",
    },
    "dash.events": {
        "id": "Kejadian",
        "en": "Events",
    },
    "dash.no_events": {
        "id": "Tidak ada kejadian dalam rentang ini",
        "en": "No events in this range",
    },
    "dash.when": {
        "id": "Waktu",
        "en": "When",
    },
    "dash.what": {
        "id": "Kejadian",
        "en": "What",
    },
    "dash.detail": {
        "id": "Rincian",
        "en": "Detail",
    },
    "dash.event.agent_start": {
        "id": "Agen mulai",
        "en": "Agent started",
    },
    "dash.event.outage": {
        "id": "Backhaul putus",
        "en": "Backhaul down",
    },
    "dash.event.offline": {
        "id": "Gateway luring",
        "en": "Gateway offline",
    },
    "dash.event.speedtest": {
        "id": "Uji kecepatan",
        "en": "Speed test",
    },
    "dash.event.other": {
        "id": "Kejadian lain",
        "en": "Other event",
    },
    "dash.duration": {
        "id": "lama {d}",
        "en": "lasted {d}",
    },
    "dash.ongoing": {
        "id": "masih berlangsung",
        "en": "still going on",
    },
    "dash.outage_band": {
        "id": "Bidang abu-abu: gangguan",
        "en": "Grey bands: outages",
    },
    "dash.no_series": {
        "id": "Belum ada data dalam rentang ini",
        "en": "No data in this range yet",
    },
    "dash.export": {
        "id": "Unduh CSV",
        "en": "Download CSV",
    },
    "dash.export_month": {
        "id": "Ketersediaan bulan ini (CSV)",
        "en": "This month's availability (CSV)",
    },
    "dash.unknown_site": {
        "id": "Lokasi {site} tidak dikenal",
        "en": "No site {site} is known",
    },
    "dash.bad_param": {
        "id": "Parameter {name} tidak sah: {value}",
        "en": "Parameter {name} is not valid: {value}",
    },
    "dash.back": {
        "id": "Kembali ke ringkasan",
        "en": "Back to the overview",
    },
    "dash.generated": {
        "id": "Dibuat {at} UTC",
        "en": "Generated {at} UTC",
    },
    "dash.avail_note": {
        "id": "Ketersediaan: bagian putaran ukur dengan backhaul hidup",
        "en": "Availability: share of measuring rounds with the backhaul up",
    },
    "alert.offline.offline": {
        "id": "{site} luring sejak {since}",
        "en": "{site} offline since {since}",
    },
    "alert.offline.online": {
        "id": "{site} daring lagi sejak {since}",
        "en": "{site} back online since {since}",
    },
    "alert.backhaul.down": {
        "id": "{site}: backhaul putus sejak {since}",
        "en": "{site}: backhaul down since {since}",
    },
    "alert.backhaul.up": {
        "id": "{site}: backhaul pulih sejak {since}",
        "en": "{site}: backhaul back up since {since}",
    },
    "alert.undervoltage.on": {
        "id": "{site}: tegangan kurang sejak {since}",
        "en": "{site}: under-voltage since {since}",
    },
    "alert.undervoltage.off": {
        "id": "{site}: tegangan normal lagi sejak {since}",
        "en": "{site}: voltage normal again since {since}",
    },
    "sites.unusable": {
        "id": "Berkas lokasi tidak bisa dipakai: {error}",
        "en": "The sites file cannot be used: {error}",
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
