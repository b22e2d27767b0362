"""A small BranchCache peer written from the specifications alone — [MS-PCCRD] discovery and
[MS-PCCRR] retrieval, version 1.0 — independent of the C++ in plugins/branchcache: the
tests hold each against the other (test_branchcache_codec.py), and use this one as the
Windows-like client that discovers and fetches a block from an agent.

Python's own XML parser (ElementTree) and AES (the cryptography package) do the work the
C++ does with its own reader and OpenSSL, so a shared misreading would have to be made
twice, in two languages, from the text."""
import hashlib
import hmac
import http.client
import os
import socket
import struct
import time
import uuid
import xml.etree.ElementTree as ET

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# ---- [MS-PCCRC]: what a client knows of a content ----------------------------------------

SEGMENT_ID_CONSTANT = "MS_P2P_CACHING\0".encode("utf-16-le")


def content_information_v1(data):
    """[MS-PCCRC] 2.3 Content Information V1 (little-endian), SHA-256 only: its segments as
    dicts {offset, length, block_size, hod, secret, id, block_hashes}, id = HoHoDk =
    HMAC-SHA256(Kp, HoD + "MS_P2P_CACHING\\0" in UTF-16LE)."""
    version, algo, _, _, count = struct.unpack_from("<HIIII", data, 0)
    if version != 0x0100 or algo != 0x800C:
        raise ValueError("not Content Information V1 with SHA-256")
    at, segments = 18, []
    for _ in range(count):
        offset, length, block_size = struct.unpack_from("<QII", data, at)
        hod, secret = data[at + 16:at + 48], data[at + 48:at + 80]
        segments.append({"offset": offset, "length": length, "block_size": block_size, "hod": hod, "secret": secret,
                         "id": hmac.new(secret, hod + SEGMENT_ID_CONSTANT, hashlib.sha256).digest()})
        at += 80
    for seg in segments:
        (blocks,) = struct.unpack_from("<I", data, at)
        seg["block_hashes"] = [data[at + 4 + 32 * i:at + 36 + 32 * i] for i in range(blocks)]
        at += 4 + 32 * blocks
    if at != len(data):
        raise ValueError("trailing bytes")
    return segments


# ---- [MS-PCCRR] ------------------------------------------------------------------------

RETRIEVAL_PATH = "/116B50EB-ECE2-41ac-8429-9F9E963361B7/"  # 2.2.2
NEGO_REQ, NEGO_RESP, GETBLKLIST, GETBLKS, BLKLIST, BLK = 0, 1, 2, 3, 4, 5  # 2.2.3 MsgType
NONE, AES_128, AES_192, AES_256 = 0, 1, 2, 3  # 2.2.3 CryptoAlgoId
KEY_BYTES = {AES_128: 16, AES_192: 24, AES_256: 32}


def version(major, minor=0):
    """2.2.3 ProtVer: "formed by concatenating" minor and major, 16 bits each, big-endian."""
    return struct.pack(">HH", minor, major)


def _sized(data, last=False):
    """A length-prefixed field and, unless it ends the message, zeros to 4-byte alignment."""
    return struct.pack(">I", len(data)) + data + (b"" if last else b"\0" * (-len(data) % 4))


def _ranges(ranges):
    return struct.pack(">I", len(ranges)) + b"".join(struct.pack(">II", i, n) for i, n in ranges)


def message(msg_type, body, algo=NONE, ver=(1, 0)):
    """Header (ProtVer, MsgType, MsgSize, CryptoAlgoId) and body."""
    return version(*ver) + struct.pack(">III", msg_type, 16 + len(body), algo) + body


def response(msg):
    """2.2.2: a response body starts with the message's length."""
    return struct.pack(">I", len(msg)) + msg


def nego_req(lo=(1, 0), hi=(1, 0)):
    return message(NEGO_REQ, version(*lo) + version(*hi))


def nego_resp(lo=(1, 0), hi=(1, 0)):
    return response(message(NEGO_RESP, version(*lo) + version(*hi)))


def getblklist(segment, ranges):
    return message(GETBLKLIST, _sized(segment) + _ranges(ranges))


def blklist(segment, ranges, next_index=0):
    return response(message(BLKLIST, _sized(segment) + _ranges(ranges) + struct.pack(">I", next_index)))


def getblks(segment, index, algo=AES_128):
    """One block a request (3.1.4.3); an empty VrfBlock, the message's last field."""
    return message(GETBLKS, _sized(segment) + _ranges([(index, 1)]) + _sized(b"", last=True), algo)


def blk(segment, index, next_index, block, iv, algo=AES_128):
    body = _sized(segment) + struct.pack(">II", index, next_index) + _sized(block) + _sized(b"") + _sized(iv, last=True)
    return response(message(BLK, body, algo))


class _Reader:
    def __init__(self, data):
        self.data, self.at = data, 0

    def u32(self):
        if self.at + 4 > len(self.data):
            raise ValueError("truncated")
        (v,) = struct.unpack_from(">I", self.data, self.at)
        self.at += 4
        return v

    def sized(self, last=False):
        n = self.u32()
        end = self.at + n
        pad = 0 if last else -n % 4
        if end + pad > len(self.data) or any(self.data[end:end + pad]):
            raise ValueError("bad sized field")
        out = self.data[self.at:end]
        self.at = end + pad
        return out

    def ranges(self):
        return [(self.u32(), self.u32()) for _ in range(self.u32())]


def parse(data, is_response):
    """A message as a dict: header fields, then the body's by name. ValueError if malformed."""
    if is_response:
        (length,) = struct.unpack_from(">I", data)
        if length != len(data) - 4:
            raise ValueError("transport header")
        data = data[4:]
    r = _Reader(data)
    raw_ver, msg_type, size, algo = r.u32(), r.u32(), r.u32(), r.u32()
    if size != len(data):
        raise ValueError("MsgSize")
    out = {"version": (raw_ver & 0xFFFF, raw_ver >> 16), "type": msg_type, "algo": algo}
    if msg_type in (NEGO_REQ, NEGO_RESP):
        lo, hi = r.u32(), r.u32()
        out.update(min=(lo & 0xFFFF, lo >> 16), max=(hi & 0xFFFF, hi >> 16))
    elif msg_type == GETBLKLIST:
        out.update(segment=r.sized(), ranges=r.ranges())
    elif msg_type == BLKLIST:
        out.update(segment=r.sized(), ranges=r.ranges(), next=r.u32())
    elif msg_type == GETBLKS:
        out.update(segment=r.sized(), ranges=r.ranges(), vrf=r.sized(last=True))
    elif msg_type == BLK:
        out.update(segment=r.sized(), index=r.u32(), next=r.u32(), block=r.sized(), vrf=r.sized(), iv=r.sized(last=True))
    else:
        raise ValueError("type %d" % msg_type)
    if r.at != len(data):
        raise ValueError("trailing bytes")
    return out


def encrypt(algo, secret, iv, block):
    """AES-CBC under the segment secret's first key bytes; a partial last block zero-padded."""
    padded = block + b"\0" * (-len(block) % 16)
    e = Cipher(algorithms.AES(secret[:KEY_BYTES[algo]]), modes.CBC(iv)).encryptor()
    return e.update(padded) + e.finalize()


def decrypt(algo, secret, iv, data, size):
    d = Cipher(algorithms.AES(secret[:KEY_BYTES[algo]]), modes.CBC(iv)).decryptor()
    return (d.update(data) + d.finalize())[:size]


def fetch_block(address, segment, index, secret, size, algo=AES_128, timeout=10):
    """GETBLKS over HTTP to "ip:port"; the block decrypted (None if the peer lacks it)."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
    try:
        conn.request("POST", RETRIEVAL_PATH, body=getblks(segment, index, algo),
                     headers={"Content-Type": "application/octet-stream"})
        reply = conn.getresponse()
        data = reply.read()
        if reply.status != 200:
            raise ValueError("HTTP %d" % reply.status)
    finally:
        conn.close()
    m = parse(data, True)
    if m["type"] != BLK or m["segment"] != segment or m["index"] != index:
        raise ValueError("not the block asked for")
    if not m["block"]:
        return None
    return decrypt(m["algo"], secret, m["iv"], m["block"], size) if m["algo"] else m["block"]


# ---- [MS-PCCRD] ------------------------------------------------------------------------

NS = {"soap": "http://www.w3.org/2003/05/soap-envelope",
      "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
      "wsd": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
      "PeerDist": "http://schemas.microsoft.com/p2p/2007/09/PeerDistributionDiscovery"}
WSD_GROUP, WSD_PORT = "239.255.255.250", 3702


def probe(segments, message_id=None):
    """A version 1.0 Probe (2.2.2.1) for these segment IDs, as text."""
    message_id = message_id or "urn:uuid:%s" % uuid.uuid4()
    scopes = " ".join(s.hex().upper() for s in segments)
    return ('<?xml version="1.0" encoding="utf-8"?>'
            '<soap:Envelope xmlns:soap="%(soap)s" xmlns:wsa="%(wsa)s" xmlns:wsd="%(wsd)s" xmlns:PeerDist="%(PeerDist)s">' % NS +
            "<soap:Header><wsa:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</wsa:To>"
            "<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</wsa:Action>"
            "<wsa:MessageID>%s</wsa:MessageID></soap:Header>" % message_id +
            "<soap:Body><wsd:Probe><wsd:Types>PeerDist:PeerDistData</wsd:Types>"
            '<wsd:Scopes MatchBy="http://schemas.xmlsoap.org/ws/2005/04/discovery/strcmp0">%s</wsd:Scopes>' % scopes +
            "</wsd:Probe></soap:Body></soap:Envelope>")


def probe_match(relates_to, segments, block_counts, addresses, endpoint=None):
    """A version 1.0 ProbeMatch (2.2.2.2, 4.3) answering a Probe, as text: what a responder
    sends (and an attacker forges)."""
    endpoint = endpoint or "urn:uuid:%s" % uuid.uuid4()
    return ('<?xml version="1.0" encoding="utf-8"?>'
            '<soap:Envelope xmlns:soap="%(soap)s" xmlns:wsa="%(wsa)s" xmlns:wsd="%(wsd)s" xmlns:PeerDist="%(PeerDist)s">' % NS +
            "<soap:Header><wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>"
            "<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action>"
            "<wsa:MessageID>urn:uuid:%s</wsa:MessageID><wsa:RelatesTo>%s</wsa:RelatesTo>" % (uuid.uuid4(), relates_to) +
            '<wsd:AppSequence InstanceId="1" MessageNumber="1"/></soap:Header>'
            "<soap:Body><wsd:ProbeMatches><wsd:ProbeMatch><wsa:EndpointReference><wsa:Address>%s</wsa:Address>"
            "</wsa:EndpointReference><wsd:Types>PeerDist:PeerDistData</wsd:Types>" % endpoint +
            "<wsd:Scopes>%s</wsd:Scopes>" % " ".join(s.hex().upper() for s in segments) +
            "<wsd:XAddrs>%s</wsd:XAddrs><wsd:MetadataVersion>1</wsd:MetadataVersion>" % " ".join(addresses) +
            "<PeerDist:PeerDistData><PeerDist:BlockCount>%s</PeerDist:BlockCount></PeerDist:PeerDistData>"
            % "".join("%08X" % c for c in block_counts) +
            "</wsd:ProbeMatch></wsd:ProbeMatches></soap:Body></soap:Envelope>")


def _text(root, path):
    e = root.find(path, NS)
    if e is None or e.text is None:
        raise ValueError("missing " + path)
    return e.text.strip()


def parse_probe(text):
    root = ET.fromstring(text)
    return {"message_id": _text(root, "soap:Header/wsa:MessageID"),
            "segments": [bytes.fromhex(s) for s in _text(root, "soap:Body/wsd:Probe/wsd:Scopes").split()]}


def parse_probe_match(text):
    """A ProbeMatch (2.2.2.2) as a dict; BlockCount read as 8 hex digits a segment, as sent."""
    root = ET.fromstring(text)
    match = "soap:Body/wsd:ProbeMatches/wsd:ProbeMatch/"
    segments = [bytes.fromhex(s) for s in _text(root, match + "wsd:Scopes").split()]
    counts = _text(root, match + "PeerDist:PeerDistData/PeerDist:BlockCount")
    width = 8 if len(counts) == 8 * len(segments) else 4
    seq = root.find("soap:Header/wsd:AppSequence", NS)
    return {"message_id": _text(root, "soap:Header/wsa:MessageID"),
            "relates_to": _text(root, "soap:Header/wsa:RelatesTo"),
            "endpoint": _text(root, match + "wsa:EndpointReference/wsa:Address"),
            "instance_id": int(seq.get("InstanceId")), "message_number": int(seq.get("MessageNumber")),
            "segments": segments,
            "block_counts": [int(counts[i:i + width], 16) for i in range(0, len(counts), width)],
            "addresses": _text(root, match + "wsd:XAddrs").split()}


def discover(segments, timeout=1.0, interface_ip=None, to=(WSD_GROUP, WSD_PORT)):
    """Multicasts a Probe (or sends it to `to`) and collects the ProbeMatches that answer it
    until timeout."""
    message_id = "urn:uuid:%s" % uuid.uuid4()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        if interface_ip:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface_ip))
        s.bind((interface_ip or "0.0.0.0", 0))
        s.sendto(probe(segments, message_id).encode(), to)
        found, end = [], time.monotonic() + timeout
        while time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                data, _ = s.recvfrom(65536)
            except socket.timeout:
                break
            try:
                m = parse_probe_match(data.decode())
            except (ValueError, ET.ParseError):
                continue
            if m["relates_to"] == message_id:
                found.append(m)
        return found
    finally:
        s.close()


def random_iv():
    return os.urandom(16)
