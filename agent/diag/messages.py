"""Every word `diag` shows, in Indonesian (`id`) and English (`en`), keyed like the check results.

Each key maps a language to (what was seen, what to do next). Texts are `str.format` templates over the
result's arguments. Pass lines need no advice. Indonesian is written the way a field technician speaks
it: short, plain, with the command to type.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.config.messages import told
from agent.diag.base import CheckResult
from agent.lang import LANGS, Lang, choose_lang

__all__ = [
    "HEADINGS",
    "LANGS",
    "MESSAGES",
    "STATUS_WORDS",
    "TITLES",
    "Lang",
    "choose_lang",
    "words",
]

_SVC = "systemctl restart village-agent"
_LOG = "journalctl -u village-agent -n 50"

TITLES: Mapping[str, Mapping[Lang, str]] = {
    "config": {"id": "Konfigurasi", "en": "Configuration"},
    "interfaces": {"id": "Antarmuka jaringan (WAN/LAN)", "en": "Network interfaces (WAN/LAN)"},
    "dhcp": {"id": "DHCP hotspot (LAN)", "en": "Hotspot DHCP (LAN)"},
    "route": {"id": "Rute default", "en": "Default route"},
    "dns": {"id": "DNS", "en": "DNS"},
    "latency": {"id": "Latensi ke target", "en": "Latency to targets"},
    "path": {"id": "Jalur (traceroute)", "en": "Path (traceroute)"},
    "broker_tcp": {"id": "Broker: koneksi TCP", "en": "Broker: TCP connection"},
    "broker_tls": {"id": "Broker: TLS/sertifikat", "en": "Broker: TLS/certificate"},
    "broker_mqtt": {"id": "Broker: login MQTT", "en": "Broker: MQTT login"},
    "broker_publish": {"id": "Broker: uji kirim data", "en": "Broker: test publish"},
    "clock": {"id": "Jam sistem", "en": "System clock"},
    "buffer": {"id": "Antrean data (buffer)", "en": "Data queue (buffer)"},
    "confirm": {"id": "Konfirmasi kolektor", "en": "Collector confirmation"},
    "disk": {"id": "Ruang disk", "en": "Disk space"},
    "power": {"id": "Daya / tegangan", "en": "Power / voltage"},
    "icmp": {"id": "Izin ICMP (ping)", "en": "ICMP permission (ping)"},
    "service": {"id": "Layanan village-agent", "en": "village-agent service"},
}

STATUS_WORDS: Mapping[Lang, Mapping[str, str]] = {
    "id": {"pass": "OK", "warn": "AWAS", "fail": "GAGAL"},
    "en": {"pass": "OK", "warn": "WARN", "fail": "FAIL"},
}

HEADINGS: Mapping[Lang, Mapping[str, str]] = {
    "id": {
        "title": "village-agent diag — pemeriksaan lokasi {site}",
        "next": "Langkah",
        "summary": "Hasil: {passed} OK, {warned} peringatan, {failed} gagal ({seconds:.1f} detik)",
    },
    "en": {
        "title": "village-agent diag — site check {site}",
        "next": "Next",
        "summary": "Result: {passed} OK, {warned} warnings, {failed} failed ({seconds:.1f} s)",
    },
}

MESSAGES: Mapping[str, Mapping[Lang, tuple[str, str]]] = {
    "common.no_config": {
        "id": ("Tidak diperiksa: konfigurasi tidak bisa dibaca.", "Perbaiki konfigurasi dulu."),
        "en": ("Not checked: the configuration could not be read.", "Fix the config first."),
    },
    "common.timeout": {
        "id": (
            "Tidak selesai dalam {seconds} detik.",
            "Ulangi diag; jika tetap, catat dan laporkan.",
        ),
        "en": ("Did not finish within {seconds} s.", "Run diag again; if it repeats, report it."),
    },
    "common.crashed": {
        "id": ("Pemeriksaan ini error: {error}", "Laporkan pesan ini ke kantor."),
        "en": ("This check itself failed: {error}", "Report this message to the office."),
    },
    "config.ok": {
        "id": ("{file} valid (lokasi {site}, broker {broker}).", ""),
        "en": ("{file} is valid (site {site}, broker {broker}).", ""),
    },
    "config.invalid": {
        "id": (
            "{file} tidak valid: {first} (+{more} masalah lain).",
            "Perbaiki file itu, lalu cek dengan: village-agent config check {file}",
        ),
        "en": (
            "{file} is not valid: {first} (+{more} more).",
            "Fix the file, then check it with: village-agent config check {file}",
        ),
    },
    "interfaces.ok": {
        "id": ("Aktif: {up}.", ""),
        "en": ("Up: {up}.", ""),
    },
    "interfaces.missing": {
        "id": (
            "Antarmuka {names} tidak ada di gateway ini.",
            "Cek nama di throughput.interfaces (perintah: ip link).",
        ),
        "en": (
            "Interface {names} does not exist here.",
            "Check throughput.interfaces against: ip link",
        ),
    },
    "interfaces.lan_missing": {
        "id": (
            "Antarmuka hotspot {lan} (lan.interface) tidak ada di gateway ini.",
            "Cek nama di lan.interface (perintah: ip link); colok ulang adaptor WiFi/LAN-nya.",
        ),
        "en": (
            "The hotspot interface {lan} (lan.interface) does not exist here.",
            "Check lan.interface against: ip link; reseat the WiFi/LAN adapter.",
        ),
    },
    "interfaces.lan_down": {
        "id": (
            "Hotspot {lan} MATI: warga tidak bisa terhubung. Aktif: {up}.",
            "Cek access point/kabel LAN dan lampunya; lalu: ip link set {lan} up",
        ),
        "en": (
            "Hotspot {lan} is DOWN: nobody in the village can connect. Up: {up}.",
            "Check the access point/LAN cable and its lights; then: ip link set {lan} up",
        ),
    },
    "interfaces.none_up": {
        "id": (
            "Tidak ada antarmuka yang aktif (mati: {names}).",
            "Cek kabel, modem/VSAT dan lampu port; lalu: ip link",
        ),
        "en": (
            "No interface is up (down: {names}).",
            "Check cables, the modem/VSAT and port lights; then: ip link",
        ),
    },
    "interfaces.down": {
        "id": (
            "Mati: {names}. Aktif: {up}.",
            "Cek kabel dan perangkat di port itu; lalu: ip link set {names} up",
        ),
        "en": (
            "Down: {names}. Up: {up}.",
            "Check the cable and device on that port; then: ip link set {names} up",
        ),
    },
    "interfaces.some_down": {
        "id": (
            "Mati: {names} (tidak dipakai?). Aktif: {up}.",
            "Abaikan jika port itu memang tidak dipakai.",
        ),
        "en": ("Down: {names} (unused?). Up: {up}.", "Ignore this if that port is not in use."),
    },
    "route.ok": {
        "id": ("Lewat {gateway} di {iface}.", ""),
        "en": ("Via {gateway} on {iface}.", ""),
    },
    "route.none": {
        "id": (
            "Tidak ada rute default: gateway tidak tahu jalan ke internet.",
            "Cek modem/VSAT dan DHCP di port WAN (perintah: ip route); nyalakan ulang modem bila perlu.",
        ),
        "en": (
            "No default route: the gateway has no way to the internet.",
            "Check the modem/VSAT and DHCP on the WAN port (ip route); power-cycle the modem if needed.",
        ),
    },
    "dns.nothing": {
        "id": ("Tidak ada nama yang perlu dicari (semua alamat IP). Server DNS: {servers}.", ""),
        "en": ("No names to resolve (all addresses are IPs). DNS servers: {servers}.", ""),
    },
    "dns.ok": {
        "id": ("Nama ditemukan: {names} (server {servers}).", ""),
        "en": ("Resolved: {names} (servers {servers}).", ""),
    },
    "dns.slow": {
        "id": (
            "DNS lambat: {slow} (server {servers}).",
            "Jaringan padat atau server DNS jauh; pantau saja.",
        ),
        "en": (
            "DNS is slow: {slow} (servers {servers}).",
            "Busy link or distant DNS server; keep an eye on it.",
        ),
    },
    "dns.timeout": {
        "id": (
            "Server DNS tidak menjawab saat mencari {host} (server {servers}).",
            "Cek koneksi WAN dulu; jika WAN baik, cek /etc/resolv.conf atau DNS dari modem.",
        ),
        "en": (
            "The DNS server did not answer for {host} (servers {servers}).",
            "Check the WAN link first; if it works, check /etc/resolv.conf or the modem's DNS.",
        ),
    },
    "dns.nxdomain": {
        "id": (
            "Nama {host} tidak dikenal oleh DNS (server {servers}).",
            "Cek ejaan nama di konfigurasi.",
        ),
        "en": (
            "The name {host} does not exist in DNS (servers {servers}).",
            "Check the spelling in the config.",
        ),
    },
    "dns.error": {
        "id": ("Gagal mencari {host}: {error}.", "Cek /etc/resolv.conf dan koneksi WAN."),
        "en": ("Could not resolve {host}: {error}.", "Check /etc/resolv.conf and the WAN link."),
    },
    "latency.no_targets": {
        "id": ("Tidak ada target latensi di konfigurasi.", "Isi latency.targets."),
        "en": ("No latency targets configured.", "Set latency.targets."),
    },
    "latency.ok": {
        "id": ("{seen}", ""),
        "en": ("{seen}", ""),
    },
    "latency.first_hop_down": {
        "id": (
            "Modem/LAN mati: lompatan pertama {hop} tidak menjawab. {seen}",
            "Cek kabel LAN dan daya modem; nyalakan ulang modem.",
        ),
        "en": (
            "Modem/LAN down: the first hop {hop} does not answer. {seen}",
            "Check the LAN cable and the modem's power; restart the modem.",
        ),
    },
    "latency.backhaul_down": {
        "id": (
            "Backhaul putus setelah lompatan pertama: modem {hop} menjawab, target lain tidak. "
            "{seen}",
            "Masalah di VSAT/ISP, bukan di LAN: cek lampu sinyal modem, arah antena, "
            "lalu hubungi penyedia.",
        ),
        "en": (
            "Backhaul down beyond the first hop: the modem {hop} answers, no other target does. "
            "{seen}",
            "The fault is at the VSAT/ISP, not the LAN: check the modem's signal lights and dish "
            "pointing, then call the provider.",
        ),
    },
    "latency.lossy": {
        "id": (
            "Sebagian paket hilang: {seen}",
            "Link tidak stabil: cek sinyal/arah antena dan cuaca; ulangi nanti.",
        ),
        "en": (
            "Some packets lost: {seen}",
            "Unstable link: check signal/dish pointing and weather; retry later.",
        ),
    },
    "latency.slow": {
        "id": (
            "Lambat (batas {limit_ms} ms): {seen}",
            "Link padat atau cuaca buruk; cek pemakaian hotspot, ulangi nanti.",
        ),
        "en": (
            "Slow (limit {limit_ms} ms): {seen}",
            "Congested link or bad weather; check hotspot use, retry later.",
        ),
    },
    "latency.all_silent": {
        "id": (
            "Tidak ada target yang menjawab: {seen}",
            "Backhaul putus. Cek modem/VSAT dan rute default.",
        ),
        "en": (
            "No target answered: {seen}",
            "The backhaul is down. Check the modem/VSAT and default route.",
        ),
    },
    "path.ok": {
        "id": ("Sampai ke {dst} dalam {hops} lompatan ({how}): {path}", ""),
        "en": ("Reached {dst} in {hops} hops ({how}): {path}", ""),
    },
    "path.breaks": {
        "id": (
            "Jalur putus setelah lompatan {after} ({at}, {kind}) menuju {dst} ({how}): {path}",
            "Lompatan terakhir yang menjawab menunjukkan bagian yang masih jalan; "
            "yang sesudahnya rusak (LAN: kabel/switch, modem: VSAT/ISP, backhaul: hubungi penyedia).",
        ),
        "en": (
            "The path breaks after hop {after} ({at}, {kind}) towards {dst} ({how}): {path}",
            "The last hop that answers is the last part that works; the fault is after it "
            "(LAN: cable/switch, modem: VSAT/ISP, backhaul: call the provider).",
        ),
    },
    "path.no_hop": {
        "id": (
            "Tidak ada lompatan yang menjawab menuju {dst} ({how}).",
            "Cek kabel LAN dan modem; lihat baris Rute default dan Latensi.",
        ),
        "en": (
            "No hop answers towards {dst} ({how}).",
            "Check the LAN cable and the modem; see the default route and latency lines.",
        ),
    },
    "path.no_target": {
        "id": ("Tidak ada alamat untuk dilacak (nama tidak ditemukan).", "Lihat baris DNS."),
        "en": ("No address to trace (no name resolved).", "See the DNS line."),
    },
    "path.no_scapy": {
        "id": (
            "Tidak diperiksa: paket scapy belum terpasang.",
            "Pasang: pip install 'village-agent[diag]' (atau: apt install python3-scapy)",
        ),
        "en": (
            "Not checked: scapy is not installed.",
            "Install it: pip install 'village-agent[diag]' (or: apt install python3-scapy)",
        ),
    },
    "path.no_permission": {
        "id": ("Tidak diperiksa: traceroute perlu root.", "Jalankan: sudo village-agent diag"),
        "en": ("Not checked: the traceroute needs root.", "Run: sudo village-agent diag"),
    },
    "path.failed": {
        "id": ("Traceroute gagal: {error}", "Ulangi dengan sudo; cek rute default."),
        "en": ("The traceroute failed: {error}", "Retry with sudo; check the default route."),
    },
    "dhcp.ok": {
        "id": (
            "Server DHCP {server} di {iface} menawarkan {address}, sewa {lease_min} menit, DNS {dns}.",
            "",
        ),
        "en": (
            "DHCP server {server} on {iface} offers {address}, lease {lease_min} min, DNS {dns}.",
            "",
        ),
    },
    "dhcp.silent": {
        "id": (
            "Tidak ada server DHCP yang menjawab di {iface}.",
            "HP warga tidak dapat alamat: nyalakan ulang access point/router hotspot, cek kabel "
            "LAN-nya, atau jalankan dnsmasq di gateway.",
        ),
        "en": (
            "No DHCP server answers on {iface}.",
            "Phones get no address: restart the hotspot's access point/router, check its LAN "
            "cable, or run dnsmasq on the gateway.",
        ),
    },
    "dhcp.no_lan": {
        "id": ("Tidak diperiksa: lan.interface tidak diisi.", ""),
        "en": ("Not checked: lan.interface is not set.", ""),
    },
    "dhcp.no_interface": {
        "id": ("Antarmuka hotspot {iface} tidak ada.", "Perbaiki lan.interface di konfigurasi."),
        "en": ("The hotspot interface {iface} does not exist.", "Fix lan.interface in the config."),
    },
    "dhcp.failed": {
        "id": ("DHCP tidak bisa diuji di {iface}: {error}", "Ulangi dengan sudo."),
        "en": ("Could not test DHCP on {iface}: {error}", "Retry with sudo."),
    },
    "broker.not_tried": {
        "id": ("Tidak dicoba karena langkah broker di atas gagal.", "Perbaiki baris di atas dulu."),
        "en": ("Not tried because a broker step above failed.", "Fix the line above first."),
    },
    "broker_tcp.ok": {
        "id": ("{host}:{port} terhubung dalam {ms} ms.", ""),
        "en": ("{host}:{port} connected in {ms} ms.", ""),
    },
    "broker_tcp.unresolved": {
        "id": ("Nama {host} tidak bisa dicari (DNS).", "Perbaiki DNS dulu (lihat baris DNS)."),
        "en": ("The name {host} could not be resolved.", "Fix DNS first (see the DNS line)."),
    },
    "broker_tcp.refused": {
        "id": (
            "{host}:{port} menolak koneksi: broker mati atau port salah.",
            "Cek broker.url; hubungi kantor: mungkin broker sedang mati.",
        ),
        "en": (
            "{host}:{port} refused the connection: broker down or wrong port.",
            "Check broker.url; call the office: the broker may be down.",
        ),
    },
    "broker_tcp.timeout": {
        "id": (
            "{host}:{port} tidak menjawab (waktu habis).",
            "Backhaul putus atau port diblokir; cek latensi di atas dan firewall modem.",
        ),
        "en": (
            "{host}:{port} did not answer (timed out).",
            "Backhaul down or port blocked; check latency above and the modem's firewall.",
        ),
    },
    "broker_tcp.unreachable": {
        "id": (
            "{host}:{port} tidak terjangkau (tidak ada rute).",
            "Cek rute default dan koneksi WAN.",
        ),
        "en": (
            "{host}:{port} is unreachable (no route).",
            "Check the default route and the WAN link.",
        ),
    },
    "broker_tls.not_used": {
        "id": ("Tidak dipakai (URL mqtt://, tanpa enkripsi).", ""),
        "en": ("Not used (mqtt:// URL, unencrypted).", ""),
    },
    "broker_tls.plaintext": {
        "id": (
            "Tanpa enkripsi (mqtt://), tetapi kata sandi dikirim: siapa pun di jalur bisa membacanya.",
            "Pakai mqtts:// di broker.url (minta port TLS ke kantor provinsi).",
        ),
        "en": (
            "Unencrypted (mqtt://), yet a password is sent: anyone on the path can read it.",
            "Use mqtts:// in broker.url (ask the provincial office for the TLS port).",
        ),
    },
    "broker_tls.ok": {
        "id": ("{version}, sertifikat sah untuk {host} (jam gateway {now}).", ""),
        "en": ("{version}, certificate valid for {host} (gateway clock {now}).", ""),
    },
    "broker_tls.local_files": {
        "id": (
            "File TLS di gateway tidak bisa dipakai: {error}",
            "Cek broker.ca_file, cert_file dan key_file.",
        ),
        "en": (
            "The gateway's TLS files cannot be used: {error}",
            "Check broker.ca_file, cert_file and key_file.",
        ),
    },
    "broker_tls.not_yet_valid": {
        "id": (
            "Sertifikat broker belum berlaku menurut jam gateway ({now}).",
            "Jam gateway mungkin mundur; tunggu sinkron NTP (lihat baris Jam), lalu ulangi.",
        ),
        "en": (
            "The broker's certificate is not yet valid by the gateway clock ({now}).",
            "The gateway clock may be behind; wait for NTP sync (see the clock line), then retry.",
        ),
    },
    "broker_tls.expired": {
        "id": (
            "Sertifikat broker sudah kedaluwarsa menurut jam gateway ({now}).",
            "Jika jam benar, sertifikat broker harus diperbarui: hubungi kantor.",
        ),
        "en": (
            "The broker's certificate has expired by the gateway clock ({now}).",
            "If the clock is right, the broker's certificate must be renewed: call the office.",
        ),
    },
    "broker_tls.clock_wrong": {
        "id": (
            "Sertifikat ditolak karena jam gateway salah ({now}).",
            "Perbaiki jam dulu: pastikan internet jalan agar NTP sinkron (timedatectl).",
        ),
        "en": (
            "Certificate refused because the gateway clock is wrong ({now}).",
            "Fix the clock first: get the internet working so NTP syncs (timedatectl).",
        ),
    },
    "broker_tls.hostname": {
        "id": (
            "Sertifikat broker bukan untuk nama {host}.",
            "Cek broker.url (nama harus sama dengan di sertifikat) atau hubungi kantor.",
        ),
        "en": (
            "The broker's certificate is not issued for {host}.",
            "Check broker.url (it must match the certificate) or call the office.",
        ),
    },
    "broker_tls.unknown_ca": {
        "id": (
            "Sertifikat broker ditandatangani CA yang tidak dikenal (CA: {ca}).",
            "Pasang file CA yang benar di broker.ca_file; minta dari kantor.",
        ),
        "en": (
            "The broker's certificate is signed by an unknown CA (CA: {ca}).",
            "Install the right CA file as broker.ca_file; get it from the office.",
        ),
    },
    "broker_tls.verify": {
        "id": ("Sertifikat broker ditolak: {error}.", "Hubungi kantor dengan pesan ini."),
        "en": (
            "The broker's certificate was refused: {error}.",
            "Call the office with this message.",
        ),
    },
    "broker_tls.timeout": {
        "id": (
            "{host} menerima TCP tapi tidak menjawab TLS (broker macet?).",
            "Hubungi kantor: broker mungkin hang. Ulangi diag beberapa menit lagi.",
        ),
        "en": (
            "{host} accepted TCP but did not answer TLS (broker hung?).",
            "Call the office: the broker may be hung. Run diag again in a few minutes.",
        ),
    },
    "broker_tls.failed": {
        "id": ("TLS gagal: {error}", "Cek port di broker.url (TLS biasanya 8883)."),
        "en": ("TLS failed: {error}", "Check the port in broker.url (TLS is usually 8883)."),
    },
    "broker_publish.ok": {
        "id": ("Pesan uji (tanpa data) ke {topic} diterima broker (PUBACK {ms} ms).", ""),
        "en": ("A test message (no readings) to {topic} was acknowledged (PUBACK {ms} ms).", ""),
    },
    "broker_publish.denied": {
        "id": (
            "Broker MENOLAK data ke {topic}: {reason}.",
            "Login berhasil tetapi ACL broker melarang topik ini: minta admin broker "
            "mengizinkan user ini menulis ke {topic}.",
        ),
        "en": (
            "The broker REFUSES data on {topic}: {reason}.",
            "The login works but the broker's ACL denies this topic: ask the broker's admin to "
            "let this user write to {topic}.",
        ),
    },
    "broker_publish.unseen_311": {
        "id": (
            "MQTT 3.1.1: broker tidak bisa memberi tahu penolakan ke {topic}. Penolakan terakhir "
            "yang dilihat layanan: {last_error} ({rejected} pesan ditolak).",
            "Pakai broker.protocol: '5' agar penolakan ACL terlihat, atau cek log broker.",
        ),
        "en": (
            "MQTT 3.1.1: the broker cannot report a refusal on {topic}. The service's last "
            "refusal: {last_error} ({rejected} messages refused).",
            "Use broker.protocol: '5' so an ACL deny can be seen, or read the broker's log.",
        ),
    },
    "broker_publish.no_ack": {
        "id": (
            "Tidak ada PUBACK untuk pesan uji ke {topic} dalam batas waktu.",
            "Broker terlalu sibuk atau link putus-putus; ulangi, lalu cek log broker.",
        ),
        "en": (
            "No PUBACK for the test message to {topic} in time.",
            "The broker is overloaded or the link drops; retry, then read the broker's log.",
        ),
    },
    "broker_publish.no_login": {
        "id": ("Login kedua untuk uji kirim gagal ({reason}).", "Ulangi diag; cek log broker."),
        "en": ("The second login, to publish, failed ({reason}).", "Retry; read the broker's log."),
    },
    "broker_publish.unreachable": {
        "id": ("Broker tidak terjangkau saat uji kirim ({reason}).", "Ulangi diag."),
        "en": ("The broker could not be reached to publish ({reason}).", "Retry diag."),
    },
    "broker_publish.failed": {
        "id": ("Uji kirim gagal: {reason}.", "Cek file kata sandi dan sertifikat."),
        "en": ("The test publish failed: {reason}.", "Check the password and certificate files."),
    },
    "broker_mqtt.ok": {
        "id": ("Login diterima (user {user}, MQTT {protocol}).", ""),
        "en": ("Login accepted (user {user}, MQTT {protocol}).", ""),
    },
    "broker_mqtt.ok_fallback": {
        "id": (
            "Login diterima (user {user}) dengan MQTT 3.1.1: broker menolak MQTT 5 ({refused_v5})."
            " Agen memakai 3.1.1 untuk broker ini dan mencoba MQTT 5 lagi setiap hari.",
            "",
        ),
        "en": (
            "Login accepted (user {user}) with MQTT 3.1.1: the broker refuses MQTT 5"
            " ({refused_v5}). The agent uses 3.1.1 for this broker and tries MQTT 5 again daily.",
            "",
        ),
    },
    "broker_mqtt.old_protocol": {
        "id": (
            "Broker menolak MQTT {protocol} ({reason}).",
            "Pakai broker.protocol: auto (bawaan) atau versi yang didukung broker.",
        ),
        "en": (
            "The broker refuses MQTT {protocol} ({reason}).",
            "Use broker.protocol: auto (the default) or the version the broker supports.",
        ),
    },
    "broker_mqtt.auth": {
        "id": (
            "Broker menolak login: kata sandi atau user salah ({reason}, user {user}).",
            "Periksa {password_file} lalu jalankan ulang layanan: " + _SVC,
        ),
        "en": (
            "The broker refused the login: wrong password or user ({reason}, user {user}).",
            "Check {password_file}, then restart the service: " + _SVC,
        ),
    },
    "broker_mqtt.refused": {
        "id": ("Broker menolak koneksi: {reason}.", "Hubungi kantor dengan pesan ini."),
        "en": (
            "The broker refused the connection: {reason}.",
            "Call the office with this message.",
        ),
    },
    "broker_mqtt.no_answer": {
        "id": (
            "Broker menerima koneksi tapi tidak menjawab login MQTT (broker macet?).",
            "Hubungi kantor: broker mungkin hang. Data tetap tersimpan di gateway.",
        ),
        "en": (
            "The broker accepted the connection but did not answer the MQTT login (hung?).",
            "Call the office: the broker may be hung. Readings stay safe on the gateway.",
        ),
    },
    "broker_mqtt.closed": {
        "id": (
            "Broker menutup koneksi tanpa jawaban (MQTT {protocol}).",
            "Cek protokol (broker.protocol: auto) dan sertifikat klien (broker.cert_file).",
        ),
        "en": (
            "The broker closed the connection without an answer (MQTT {protocol}).",
            "Check broker.protocol (auto tries 3.1.1) and the client certificate (broker.cert_file).",
        ),
    },
    "broker_mqtt.cert_refused": {
        "id": (
            "Broker menolak sertifikat klien gateway ini ({reason}).",
            "Periksa broker.cert_file dan broker.key_file; minta sertifikat yang benar dari kantor.",
        ),
        "en": (
            "The broker refused this gateway's client certificate ({reason}).",
            "Check broker.cert_file and broker.key_file; get the right certificate from the office.",
        ),
    },
    "broker_mqtt.unreachable": {
        "id": ("Tidak bisa terhubung untuk login: {reason}", "Lihat baris TCP/TLS di atas."),
        "en": ("Could not connect to log in: {reason}", "See the TCP/TLS lines above."),
    },
    "broker_mqtt.password_file": {
        "id": (
            "File kata sandi {path} tidak bisa dibaca: {error}",
            "Cek file dan izinnya (chmod 0640).",
        ),
        "en": (
            "The password file {path} cannot be read: {error}",
            "Check the file and its mode (chmod 0640).",
        ),
    },
    "clock.ok": {
        "id": ("Sinkron (NTP), sekarang {now}.", ""),
        "en": ("Synced (NTP), now {now}.", ""),
    },
    "clock.unsynced": {
        "id": (
            "Belum sinkron NTP; jam menunjukkan {now}.",
            "Biasanya sinkron sendiri setelah internet jalan. Cek: timedatectl",
        ),
        "en": (
            "Not synced by NTP yet; the clock says {now}.",
            "It usually syncs once the internet works. Check: timedatectl",
        ),
    },
    "clock.implausible": {
        "id": (
            "Jam salah: {now} (gateway tanpa baterai jam setelah listrik padam).",
            "Pastikan internet jalan agar NTP sinkron; data tetap dicatat dan waktunya dikoreksi nanti.",
        ),
        "en": (
            "The clock is wrong: {now} (no clock battery; after a power cut).",
            "Get the internet working so NTP syncs; readings are kept and re-timed later.",
        ),
    },
    "buffer.missing": {
        "id": (
            "Belum ada buffer di {path}.",
            "Layanan belum pernah jalan di sini; lihat baris Layanan.",
        ),
        "en": ("No buffer in {path} yet.", "The service never ran here; see the service line."),
    },
    "buffer.unreadable": {
        "id": (
            "Buffer tidak bisa dibaca: {error}",
            "Jalankan ulang layanan; file rusak akan disisihkan otomatis.",
        ),
        "en": (
            "The buffer cannot be read: {error}",
            "Restart the service; a damaged file is set aside automatically.",
        ),
    },
    "buffer.empty": {
        "id": ("Kosong: semua data sudah terkirim (dibuang total: {dropped}).", ""),
        "en": ("Empty: everything was delivered (dropped in total: {dropped}).", ""),
    },
    "buffer.ok": {
        "id": ("{count} data menunggu, tertua {age_min} menit.", ""),
        "en": ("{count} readings waiting, oldest {age_min} min.", ""),
    },
    "buffer.old": {
        "id": (
            "{count} data belum terkirim, tertua {age_min} menit.",
            "Data tertahan: lihat baris broker. Backhaul putus berminggu-minggu? village-agent buffer export",
        ),
        "en": (
            "{count} readings unsent, oldest {age_min} min.",
            "Data held back: see the broker lines. Weeks without backhaul? village-agent buffer export",
        ),
    },
    "buffer.untrusted_age": {
        "id": (
            "{count} data belum terkirim; umur tidak pasti (dicatat sebelum jam sinkron).",
            "Lihat baris broker dan jam.",
        ),
        "en": (
            "{count} readings unsent; their age is uncertain (taken before the clock synced).",
            "See the broker and clock lines.",
        ),
    },
    "buffer.dropped": {
        "id": (
            "{count} data menunggu; {dropped} data lama sudah dibuang karena buffer penuh.",
            "Buffer pernah penuh. Jika backhaul lama putus, pakai: village-agent buffer export",
        ),
        "en": (
            "{count} readings waiting; {dropped} old readings were dropped when the buffer was full.",
            "The buffer overflowed. For long outages use: village-agent buffer export",
        ),
    },
    "buffer.nearly_full": {
        "id": (
            "{count} dari maks {max} data: buffer hampir penuh, data tertua akan dibuang.",
            "Ekspor sekarang ke USB: village-agent buffer export --out /media/usb/ekspor.jsonl.gz",
        ),
        "en": (
            "{count} of at most {max} readings: nearly full, the oldest will be dropped.",
            "Export now to USB: village-agent buffer export --out /media/usb/export.jsonl.gz",
        ),
    },
    "confirm.unknown": {
        "id": ("Belum diketahui: layanan belum melapor.", "Lihat baris Layanan."),
        "en": ("Not known yet: the service has not reported.", "See the service line."),
    },
    "confirm.none": {
        "id": (
            "Belum pernah ada konfirmasi kolektor: data dihapus begitu broker menerimanya.",
            "",
        ),
        "en": (
            "No collector confirmation seen: readings are deleted on the broker's acknowledgement.",
            "",
        ),
    },
    "confirm.ok": {
        "id": (
            "Kolektor menyimpan sampai seq {through} (epoch {epoch}), ack terakhir {age_min} menit "
            "lalu; {unconfirmed} data menunggu konfirmasi.",
            "",
        ),
        "en": (
            "The collector stored through seq {through} (epoch {epoch}), last ack {age_min} min "
            "ago; {unconfirmed} readings await its confirmation.",
            "",
        ),
    },
    "confirm.repairing": {
        "id": (
            "Kolektor menyimpan sampai seq {through}; yang hilang: {missing}. Sedang dikirim ulang.",
            "Tidak perlu tindakan; jika terus berulang, periksa broker (antrean penuh, restart).",
        ),
        "en": (
            "The collector stored through seq {through}; missing: {missing}. Being sent again.",
            "Nothing to do; if it keeps coming back, check the broker (queue limit, restarts).",
        ),
    },
    "confirm.released": {
        "id": (
            "{released} data terkirim dilepas sebelum kolektor mengonfirmasi (batas {max} data).",
            "Periksa apakah kolektor provinsi berjalan; data itu mungkin tidak tersimpan.",
        ),
        "en": (
            "{released} delivered readings were released before the collector confirmed them "
            "(bound {max} readings).",
            "Check that the provincial collector runs; those readings may not be stored.",
        ),
    },
    "disk.ok": {
        "id": ("Sisa {free_mb} MB di {path}.", ""),
        "en": ("{free_mb} MB free at {path}.", ""),
    },
    "disk.low": {
        "id": (
            "Tinggal {free_mb} MB di {path} (batas {floor_mb} MB).",
            "Hapus file yang tidak perlu (log lama: journalctl --vacuum-size=20M).",
        ),
        "en": (
            "Only {free_mb} MB left at {path} (floor {floor_mb} MB).",
            "Remove what is not needed (old logs: journalctl --vacuum-size=20M).",
        ),
    },
    "disk.below_floor": {
        "id": (
            "Disk penuh: sisa {free_mb} MB di {path}, di bawah batas {floor_mb} MB; data baru tak disimpan.",
            "Kosongkan ruang sekarang (journalctl --vacuum-size=20M; hapus file besar), atau ganti kartu SD.",
        ),
        "en": (
            "Disk full: {free_mb} MB left at {path}, below the {floor_mb} MB floor; new readings not stored.",
            "Free space now (journalctl --vacuum-size=20M; remove big files) or replace the SD card.",
        ),
    },
    "disk.read_only": {
        "id": (
            "{path} tidak bisa ditulisi (kartu SD read-only?).",
            "Kartu SD mungkin rusak: siapkan pengganti, lalu reboot.",
        ),
        "en": (
            "{path} is not writable (SD card read-only?).",
            "The SD card may be failing: have a spare ready, then reboot.",
        ),
    },
    "disk.unreadable": {
        "id": ("Tidak bisa membaca ruang disk di {path}: {error}", "Cek state_dir di konfigurasi."),
        "en": ("Cannot read the disk space at {path}: {error}", "Check state_dir in the config."),
    },
    "power.not_pi": {
        "id": ("Bukan Raspberry Pi (tidak ada data tegangan); dilewati.", ""),
        "en": ("Not a Raspberry Pi (no voltage data); skipped.", ""),
    },
    "power.ok": {
        "id": ("Tegangan normal ({flags}).", ""),
        "en": ("Voltage normal ({flags}).", ""),
    },
    "power.under_voltage_now": {
        "id": (
            "Tegangan kurang SEKARANG ({flags}).",
            "Ganti adaptor daya (5 V 3 A) atau kabelnya; cek aki/solar panel dan UPS.",
        ),
        "en": (
            "Under-voltage NOW ({flags}).",
            "Replace the power adapter (5 V 3 A) or its cable; check battery/solar and UPS.",
        ),
    },
    "power.throttled_now": {
        "id": (
            "CPU diperlambat SEKARANG ({flags}).",
            "Cek suhu dan ventilasi kotak, dan adaptor daya.",
        ),
        "en": (
            "CPU throttled NOW ({flags}).",
            "Check temperature and box ventilation, and the power adapter.",
        ),
    },
    "power.since_boot": {
        "id": (
            "Pernah kurang tegangan/panas sejak menyala ({flags}).",
            "Cek adaptor daya, kabel dan ventilasi; pantau lagi nanti.",
        ),
        "en": (
            "Under-voltage/heat happened since boot ({flags}).",
            "Check the power adapter, cable and ventilation; look again later.",
        ),
    },
    "icmp.ok": {
        "id": ("Ping diizinkan ({method}; ping_group_range {groups}).", ""),
        "en": ("Ping permitted ({method}; ping_group_range {groups}).", ""),
    },
    "icmp.tcp_fallback": {
        "id": (
            "Ping tidak diizinkan (ping_group_range {groups}); latensi diukur lewat TCP.",
            "Boleh dibiarkan. Untuk ping: sysctl net.ipv4.ping_group_range='0 2147483647'",
        ),
        "en": (
            "Ping not permitted (ping_group_range {groups}); latency uses TCP connect time.",
            "Fine as is. To allow ping: sysctl net.ipv4.ping_group_range='0 2147483647'",
        ),
    },
    "icmp.required": {
        "id": (
            "latency.method: icmp, tetapi ping tidak diizinkan (ping_group_range {groups}).",
            "Ubah ke method: auto, atau: sysctl net.ipv4.ping_group_range='0 2147483647'",
        ),
        "en": (
            "latency.method is icmp but ping is not permitted (ping_group_range {groups}).",
            "Use method: auto, or: sysctl net.ipv4.ping_group_range='0 2147483647'",
        ),
    },
    "service.running": {
        "id": ("Berjalan (pid {pid}), status {age_s} detik lalu, broker: {broker}.", ""),
        "en": ("Running (pid {pid}), status {age_s} s ago, broker: {broker}.", ""),
    },
    "service.stale": {
        "id": (
            "Proses {pid} ada, tapi status terakhir {age_s} detik lalu (batas {limit_s}): macet?",
            f"Jalankan ulang: {_SVC}; lalu lihat log: {_LOG}",
        ),
        "en": (
            "Process {pid} exists but last wrote its status {age_s} s ago (limit {limit_s}): hung?",
            f"Restart it: {_SVC}; then read the log: {_LOG}",
        ),
    },
    "service.stopped": {
        "id": (
            "Layanan TIDAK berjalan (terakhir pid {pid}, broker: {broker}).",
            f"Nyalakan: {_SVC}; lihat sebabnya: {_LOG}",
        ),
        "en": (
            "The service is NOT running (last pid {pid}, broker: {broker}).",
            f"Start it: {_SVC}; see why: {_LOG}",
        ),
    },
    "service.never": {
        "id": (
            "Layanan belum pernah berjalan di sini (tidak ada status).",
            f"Nyalakan: {_SVC}; lihat sebabnya: {_LOG}",
        ),
        "en": (
            "The service never ran here (no status file).",
            f"Start it: {_SVC}; see why: {_LOG}",
        ),
    },
}


# The daemon's broker states as the status file spells them, in words for each language: the
# service line shows them inside its sentence.
BROKER_STATES: Mapping[str, Mapping[Lang, str]] = {
    "connected": {"id": "terhubung", "en": "connected"},
    "disconnected": {"id": "terputus", "en": "disconnected"},
    "unreachable": {"id": "tidak terjangkau", "en": "unreachable"},
    "refused": {"id": "menolak", "en": "refused"},
}


def words(found: CheckResult, lang: Lang) -> tuple[str, str]:
    """(detail, advice) of a result in `lang`."""
    detail, advice = MESSAGES[found.key][lang]
    # A configuration problem carries its own words in both languages.
    args = {
        name: told(value, lang) if isinstance(value, str) else value
        for name, value in found.args.items()
    }
    state = args.get("broker")
    if found.name == "service" and isinstance(state, str) and state in BROKER_STATES:
        args["broker"] = BROKER_STATES[state][lang]
    return detail.format(**args), advice.format(**args)
