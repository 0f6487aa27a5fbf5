"""Every word the commands other than `diag` show (`--help`, `once`, `status`, `config check`), in
Indonesian (`id`) and English (`en`). `diag` has its own catalogue beside its checks
(`agent.diag.messages`); both choose the language through `agent.lang`.

Only the standard library and `agent.lang` are imported: `main` builds `--help` from here before it
knows which command runs, and `run` must not load more than it needs.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.lang import LANGS, Lang, choose_lang

__all__ = ["LANGS", "TEXTS", "Lang", "choose_lang", "text"]

_LOG = "journalctl -u village-agent -n 50"

TEXTS: Mapping[str, Mapping[Lang, str]] = {
    # -- --help ------------------------------------------------------------------------------------
    "help.description": {
        "id": "Mengukur link desa, menyimpan data di disk, mengirim lewat MQTT.",
        "en": "Measures a village site's link, buffers readings on disk, publishes over MQTT.",
    },
    "help.version": {"id": "tampilkan versi lalu keluar", "en": "print the version and exit"},
    "help.lang": {
        "id": "bahasa: id atau en (bawaan: dari LANG, id* = Indonesia)",
        "en": "language: id or en (default: from LANG, id* = Indonesian)",
    },
    "help.config": {"id": "file konfigurasi (YAML)", "en": "config file (YAML)"},
    "help.run": {"id": "jalankan layanan (daemon)", "en": "run the daemon"},
    "help.once": {
        "id": "ukur satu putaran dan tampilkan; tidak disimpan atau dikirim kecuali --publish",
        "en": "measure one round and print it; nothing is stored or sent unless --publish",
    },
    "help.once.json": {
        "id": "satu objek JSON per data per baris",
        "en": "one JSON object per reading per line",
    },
    "help.once.speedtest": {
        "id": "jalankan juga uji kecepatan sekarang (tetap dalam kuota data)",
        "en": "also run the speed test now (whatever the schedule, never beyond the data budget)",
    },
    "help.once.publish": {
        "id": "simpan putaran ke buffer, kirim ke broker, tunggu PUBACK (layanan harus berhenti)",
        "en": "store the round in the buffer, publish it, wait for the PUBACK (service stopped)",
    },
    "help.once.timeout": {
        "id": "batas waktu menunggu PUBACK (detik)",
        "en": "how long to wait for the PUBACK (seconds)",
    },
    "help.config_tools": {"id": "alat konfigurasi", "en": "configuration tools"},
    "help.config.check": {"id": "periksa file konfigurasi", "en": "validate a config file"},
    "help.version_cmd": {"id": "tampilkan versi", "en": "print the version"},
    "help.diag": {
        "id": "daftar periksa teknisi: apa yang rusak di lokasi ini",
        "en": "technician's checklist: what is wrong at this site",
    },
    "help.diag.json": {
        "id": 'keluaran JSON: {{"checks": [{{name, status, detail, advice}}]}}',
        "en": 'JSON output: {{"checks": [{{name, status, detail, advice}}]}}',
    },
    "help.status": {"id": "apa yang sedang dikerjakan layanan", "en": "what the daemon is doing"},
    "help.status.json": {"id": "keluaran JSON", "en": "JSON output"},
    "help.status.history": {
        "id": "riwayat 14 hari di gateway ini: ketersediaan, putus backhaul, padam listrik",
        "en": "the last 14 days on this gateway: availability, backhaul outages, power cuts",
    },
    "help.buffer": {
        "id": "bawa data yang belum terkirim dengan USB",
        "en": "carry unsent readings on a USB stick",
    },
    "help.export": {
        "id": "salin data yang belum terkirim ke satu file .jsonl.gz",
        "en": "copy the unsent readings into one .jsonl.gz file",
    },
    "help.export.out": {
        "id": "file tujuan, mis. /media/usb/site.jsonl.gz",
        "en": "the file to write, e.g. /media/usb/site.jsonl.gz",
    },
    "help.import": {
        "id": "kirim file ekspor ke broker (bisa dilanjutkan)",
        "en": "publish an export to the broker (resumable)",
    },
    "help.import.progress": {
        "id": "file kemajuan (bawaan: FILE.progress di sebelah FILE)",
        "en": "progress file (default: FILE.progress next to FILE)",
    },
    "help.import.timeout": {
        "id": "berhenti setelah selama ini tanpa PUBACK",
        "en": "give up after this long without an ack",
    },
    # -- config check ------------------------------------------------------------------------------
    "config.ok": {
        "id": "{file}: OK (lokasi {site}, broker {broker})",
        "en": "{file}: OK (site {site}, broker {broker})",
    },
    # -- once --------------------------------------------------------------------------------------
    "once.speedtest_no_url": {
        "id": "Uji kecepatan tidak bisa jalan: speedtest.url_download belum diisi di {file}.",
        "en": "The speed test cannot run: speedtest.url_download is not set in {file}.",
    },
    "once.speedtest_failed": {
        "id": "Uji kecepatan tidak jalan: {error}",
        "en": "Speed test not run: {error}",
    },
    "once.daemon_running": {
        "id": "Layanan sedang memakai {state_dir} dan mengirim sendiri. Hentikan dulu: "
        "systemctl stop village-agent (atau pakai: village-agent diag).",
        "en": "The service holds {state_dir} and publishes by itself. Stop it first: "
        "systemctl stop village-agent (or use: village-agent diag).",
    },
    "once.buffer_unusable": {
        "id": "Buffer tidak bisa dipakai: {error}",
        "en": "The buffer cannot be used: {error}",
    },
    "once.published": {
        "id": "Terkirim: putaran ini seq {first}..{last}; total {readings} data (dari seq "
        "{sent_first}) dalam {messages} pesan, {size}; PUBACK setelah {rtt_ms} ms.",
        "en": "Published: this round seq {first}..{last}; {readings} readings in all (from seq "
        "{sent_first}) in {messages} messages, {size}; PUBACK after {rtt_ms} ms.",
    },
    "once.refused": {
        "id": "Broker MENOLAK data: {reason}. Data tetap di buffer. Cek ACL broker untuk topik "
        "telemetry lokasi ini.",
        "en": "The broker REFUSED the data: {reason}. The readings stay in the buffer. Check the "
        "broker's ACL for this site's telemetry topic.",
    },
    "once.login_refused": {
        "id": "Broker menolak login: {reason}. Data tetap di buffer. Cek user dan file kata sandi.",
        "en": "The broker refused the login: {reason}. The readings stay in the buffer. Check the "
        "user and password file.",
    },
    "once.unreachable": {
        "id": "Broker tidak terjangkau: {reason}. Data tetap di buffer; jalankan: "
        "village-agent diag",
        "en": "The broker cannot be reached: {reason}. The readings stay in the buffer; run: "
        "village-agent diag",
    },
    "once.no_ack": {
        "id": "Tidak ada PUBACK untuk seq {first}..{last} dalam {seconds} detik. Data tetap di "
        "buffer; jalankan: village-agent diag",
        "en": "No PUBACK for seq {first}..{last} within {seconds} s. The readings stay in the "
        "buffer; run: village-agent diag",
    },
    # -- buffer export / import ------------------------------------------------------------------
    "buffer.nothing_to_export": {
        "id": "export: {error}: tidak ada yang diekspor",
        "en": "export: {error}: nothing to export",
    },
    "buffer.export_failed": {"id": "export: {error}", "en": "export: {error}"},
    "buffer.cannot_write": {
        "id": "export: tidak bisa menulis {out}: {error}",
        "en": "export: cannot write {out}: {error}",
    },
    "buffer.seqs": {"id": "seq {first}..{last}", "en": "seq {first}..{last}"},
    "buffer.none_unsent": {"id": "tidak ada yang belum terkirim", "en": "nothing unsent"},
    "buffer.exported": {
        "id": "{count} data belum terkirim dari lokasi {site} ({seqs}) diekspor ke {path}",
        "en": "exported {count} unsent readings of site {site} ({seqs}) to {path}",
    },
    "buffer.import_hint": {
        "id": "impor di tempat lain dengan: village-agent buffer import {name} --config FILE",
        "en": "import elsewhere with: village-agent buffer import {name} --config FILE",
    },
    "buffer.bad_export": {
        "id": "import: {error}; tidak ada yang dikirim",
        "en": "import: {error}; nothing was sent",
    },
    "buffer.import_failed": {"id": "import: {error}", "en": "import: {error}"},
    "buffer.key_missing": {
        "id": "{command}: {error}; kunci transfer situs ini dibuat oleh install.sh "
        "(/etc/village-agent/transfer.key) atau diberikan oleh kantor provinsi",
        "en": "{command}: {error}; the site's transfer key is made by install.sh "
        "(/etc/village-agent/transfer.key) or issued by the provincial office",
    },
    "buffer.refused": {
        "id": "import: {error}; batch yang sudah diterima tercatat, jalankan lagi setelah diperbaiki",
        "en": "import: {error}; acknowledged batches are recorded, run again once fixed",
    },
    "buffer.no_progress": {
        "id": "import: {error}; jalankan perintah yang sama lagi untuk melanjutkan",
        "en": "import: {error}; run the same command again to resume",
    },
    "buffer.imported": {
        "id": "lokasi {site}: {delivered}/{total} data diterima broker ({now} sekarang dalam "
        "{messages} pesan, {already} di putaran sebelumnya) dalam {seconds:.1f} detik",
        "en": "site {site}: {delivered}/{total} readings acknowledged by the broker ({now} now in "
        "{messages} messages, {already} in earlier runs) in {seconds:.1f} s",
    },
    "buffer.interrupted": {
        "id": "terhenti: jalankan perintah yang sama lagi untuk melanjutkan",
        "en": "interrupted: run the same command again to resume",
    },
    # -- status ------------------------------------------------------------------------------------
    "status.running": {"id": "village-agent berjalan", "en": "village-agent is running"},
    "status.stale": {
        "id": "village-agent punya proses tetapi statusnya lama: mungkin macet",
        "en": "village-agent has a process but its status is old: it may be hung",
    },
    "status.stopped": {
        "id": "village-agent TIDAK berjalan (ini laporan terakhirnya)",
        "en": "village-agent is NOT running (this is what it last reported)",
    },
    "status.never": {
        "id": "village-agent TIDAK berjalan: belum pernah menulis status di sini",
        "en": "village-agent is NOT running: it has never written a status here",
    },
    "status.not_since_boot": {
        "id": "village-agent TIDAK berjalan: belum jalan sejak gateway menyala",
        "en": "village-agent is NOT running: it has not run since the gateway started",
    },
    "status.where": {"id": "(lokasi {site}, {state_dir})", "en": "(site {site}, {state_dir})"},
    "status.pid_version": {"id": "pid / versi", "en": "pid / version"},
    "status.uptime": {"id": "waktu jalan", "en": "uptime"},
    "status.last_round": {"id": "putaran terakhir", "en": "last round"},
    "status.last_publish": {"id": "kirim terakhir", "en": "last publish"},
    "status.broker": {"id": "broker", "en": "broker"},
    "status.backlog": {"id": "antrean", "en": "backlog"},
    "status.dropped": {"id": "data dibuang", "en": "readings dropped"},
    "status.last_error": {"id": "galat terakhir", "en": "last error"},
    "status.last_disconnect": {"id": "putus terakhir", "en": "last disconnect"},
    "status.collector": {"id": "kolektor", "en": "collector"},
    "status.unconfirmed": {"id": "belum dikonfirmasi", "en": "unconfirmed"},
    "status.confirm_never": {
        "id": "belum pernah ada konfirmasi dari kolektor: data dihapus begitu broker menerimanya",
        "en": "no collector confirmation seen: readings are deleted on the broker's acknowledgement",
    },
    "status.confirm_through": {
        "id": "tersimpan sampai seq {through} (epoch {epoch}), konfirmasi terakhir {when}",
        "en": "stored through seq {through} (epoch {epoch}), last ack {when}",
    },
    "status.unconfirmed_count": {
        "id": "{count} data terkirim menunggu konfirmasi ({released} dilepas tanpa konfirmasi)",
        "en": "{count} readings delivered, awaiting confirmation ({released} released unconfirmed)",
    },
    "status.confirm_missing": {
        "id": "kolektor kehilangan {missing} (sedang dikirim ulang)",
        "en": "missing at the collector: {missing} (being sent again)",
    },
    "status.protocol_fallback": {
        "id": "(MQTT {version}: broker menolak MQTT 5; MQTT 5 dicoba lagi setiap hari)",
        "en": "(MQTT {version}: the broker refuses MQTT 5; 5 is tried again daily)",
    },
    "status.never_time": {"id": "belum pernah", "en": "never"},
    "status.ago": {"id": "{span} lalu", "en": "{span} ago"},
    "status.old": {"id": "berumur {span}", "en": "{span} old"},
    "status.seconds": {"id": "{n:.0f} detik", "en": "{n:.0f} s"},
    "status.minutes": {"id": "{n:.0f} menit", "en": "{n:.0f} min"},
    "status.hours": {"id": "{n:.1f} jam", "en": "{n:.1f} h"},
    "status.days": {"id": "{n:.1f} hari", "en": "{n:.1f} days"},
    "status.none_acked": {"id": "belum ada yang diterima broker", "en": "none acknowledged yet"},
    "status.acked": {"id": "{when} (diterima broker)", "en": "{when} (acknowledged)"},
    "status.backlog_unknown": {"id": "tidak diketahui: {error}", "en": "unknown: {error}"},
    "status.unsent": {
        "id": "{count} data belum terkirim, tertua {age}",
        "en": "{count} readings unsent, oldest {age}",
    },
    "status.untrusted": {
        "id": " (diambil sebelum jam sinkron: waktunya belum pasti)",
        "en": " (taken before the clock synced: time not trusted)",
    },
    "history.title": {
        "id": "Riwayat {site} di gateway ini, 14 hari terakhir (waktu {tz})",
        "en": "History of {site} on this gateway, last 14 days (times in {tz})",
    },
    "history.empty": {
        "id": "Belum ada riwayat: agen belum mengukur dengan jam yang sudah disetel.",
        "en": "No history yet: the agent has not measured with its clock set.",
    },
    "history.head": {
        "id": "{date:<10}  {up:>13}  {rtt:>9}  {loss:>7}  {wan}",
        "en": "{date:<10}  {up:>13}  {rtt:>9}  {loss:>7}  {wan}",
    },
    "history.columns": {
        "id": "tanggal|backhaul aktif|latensi|hilang|WAN masuk / keluar",
        "en": "date|backhaul up|latency|loss|WAN in / out",
    },
    "history.outages": {"id": "Backhaul putus:", "en": "Backhaul down:"},
    "history.no_outages": {
        "id": "Backhaul tidak pernah putus.",
        "en": "The backhaul was never down.",
    },
    "history.outage": {"id": "{start} - {end} ({span})", "en": "{start} - {end} ({span})"},
    "history.outage_open": {
        "id": "{start} - sekarang ({span}, masih putus)",
        "en": "{start} - now ({span}, still down)",
    },
    "history.outage_no_start": {
        "id": "{span}, waktunya tidak diketahui (jam belum disetel)",
        "en": "{span}, time unknown (the clock was not set)",
    },
    "history.power_cuts": {"id": "Listrik padam:", "en": "Power cuts:"},
    "history.no_power_cuts": {
        "id": "Tidak ada listrik padam.",
        "en": "No power cut.",
    },
    "history.power_cut": {
        "id": "{start} - {end} (sekitar {span})",
        "en": "{start} - {end} (about {span})",
    },
    "history.power_cut_no_start": {
        "id": "menyala lagi {end} (awal padam tidak diketahui)",
        "en": "back on at {end} (start unknown)",
    },
    "history.dropped": {
        "id": "{n} kejadian yang lebih lama tidak disimpan (batas {limit}).",
        "en": "{n} older events not kept (limit {limit}).",
    },
    "history.next": {
        "id": "langkah: cocokkan dengan jadwal padam PLN dan catatan gangguan operator VSAT/4G",
        "en": "next: compare with the power company's outages and the VSAT/4G operator's records",
    },
    "history.span_min": {"id": "{m} mnt", "en": "{m} min"},
    "history.span_h": {"id": "{h} j {m} mnt", "en": "{h} h {m} min"},
    "history.span_d": {"id": "{d} hari {h} j", "en": "{d} d {h} h"},
    "status.next": {
        "id": "langkah: systemctl status village-agent; " + _LOG,
        "en": "next: systemctl status village-agent; " + _LOG,
    },
}


def text(key: str, lang: Lang, **args: object) -> str:
    """The text under `key` in `lang`, with its {fields} filled from `args`."""
    return TEXTS[key][lang].format(**args)
