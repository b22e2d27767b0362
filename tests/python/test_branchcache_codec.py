"""The branchcache plugin's [MS-PCCRR]/[MS-PCCRD] codec (C++, through pd_test_branchcache_codec)
against the independent Python implementation in branchcache_client.py: each builds what the
other parses, byte for byte where the format is exact."""
import json
import os
import subprocess

import pytest

import branchcache_client as bc

TOOL = os.path.join(os.environ.get("PD_BUILD_DIR", "build/dev"), "tests", "pd_test_branchcache_codec")
SEGMENT = bytes.fromhex("491b217dbee2b5f12ca79b015e06f4bbe64f9745bad7867aef17de59927edce9")  # ../shared/vectors/pccrc.md V1
SECRET = bytes.fromhex("11afc0d7949243f94f9c1fab35d9fd1e331fcf7811a2e01d3587b38d770a29e2")


def cxx(*args, data=b""):
    p = subprocess.run([TOOL, *args], input=data, capture_output=True, timeout=30)
    if p.returncode:
        raise ValueError(p.stderr.decode().strip())
    return p.stdout


def cxx_decode(kind, data):
    return json.loads(cxx("decode", kind, data=data))


def cxx_encode(obj):
    return cxx("encode", data=json.dumps(obj).encode())


@pytest.fixture(autouse=True)
def tool_built():
    if not os.path.exists(TOOL):
        pytest.fail("pd_test_branchcache_codec is not built at %s" % TOOL)


def test_requests_python_builds_are_what_the_plugin_reads():
    cases = [
        (bc.nego_req((1, 0), (2, 0)), {"type": "nego_req", "min": [1, 0], "max": [2, 0]}),
        (bc.getblklist(SEGMENT, [(0, 2), (7, 3)]), {"type": "get_blk_list", "segment": SEGMENT.hex(), "ranges": [[0, 2], [7, 3]]}),
        (bc.getblks(SEGMENT, 5, bc.AES_256), {"type": "get_blks", "segment": SEGMENT.hex(), "ranges": [[5, 1]], "vrf": "", "algo": 3}),
    ]
    for wire, fields in cases:
        got = cxx_decode("request", wire)
        for k, v in fields.items():
            assert got[k] == v, (k, got)
        assert got["version"] == [1, 0]
        assert cxx_encode(got) == wire  # and the plugin builds the same bytes


def test_responses_the_plugin_builds_are_what_python_reads():
    iv = bc.random_iv()
    block = bc.encrypt(bc.AES_128, SECRET, iv, b"x" * 100)
    cases = [
        ({"type": "nego_resp", "min": [1, 0], "max": [1, 0]}, bc.nego_resp()),
        ({"type": "blk_list", "segment": SEGMENT.hex(), "ranges": [[1, 1]], "next": 0}, bc.blklist(SEGMENT, [(1, 1)])),
        ({"type": "blk", "algo": 1, "segment": SEGMENT.hex(), "index": 1, "next": 2, "block": block.hex(), "iv": iv.hex()},
         bc.blk(SEGMENT, 1, 2, block, iv)),
        ({"type": "blk", "algo": 0, "segment": SEGMENT.hex(), "index": 3, "next": 0, "block": "0102030405", "iv": ""},
         bc.blk(SEGMENT, 3, 0, b"\1\2\3\4\5", b"", bc.NONE)),
    ]
    for fields, python_wire in cases:
        wire = cxx_encode(fields)
        assert wire == python_wire, fields["type"]
        m = bc.parse(wire, True)
        assert m["version"] == (1, 0) and m["segment" if "segment" in fields else "type"] is not None
        assert cxx_decode("response", python_wire)["type"] == fields["type"]
    m = bc.parse(cxx_encode(cases[2][0]), True)
    assert bc.decrypt(m["algo"], SECRET, m["iv"], m["block"], 100) == b"x" * 100


def test_block_encryption_agrees_both_ways():
    for algo in (bc.AES_128, bc.AES_192, bc.AES_256):
        for size in (1, 37, 65536):
            plain, iv = os.urandom(size), bc.random_iv()
            ours = cxx("encrypt", str(algo), SECRET.hex(), iv.hex(), data=plain)
            assert ours == bc.encrypt(algo, SECRET, iv, plain), (algo, size)
            assert bc.decrypt(algo, SECRET, iv, ours, size) == plain
            assert cxx("decrypt", str(algo), SECRET.hex(), iv.hex(), str(size), data=bc.encrypt(algo, SECRET, iv, plain)) == plain


def test_discovery_messages_agree_both_ways():
    ids = [SEGMENT, bytes(range(48)), bytes(64)]
    probe = bc.probe(ids, "urn:uuid:91528b47-b96d-4e30-981f-308c0586926f")
    got = cxx_decode("probe", probe.encode())
    assert got == {"message_id": "urn:uuid:91528b47-b96d-4e30-981f-308c0586926f", "segments": [i.hex() for i in ids]}
    assert bc.parse_probe(cxx_encode({"type": "probe", **got}).decode())["segments"] == ids

    match = {"type": "probe_match", "message_id": "urn:uuid:1", "relates_to": "urn:uuid:2", "endpoint": "urn:uuid:3",
             "instance_id": 1218765447, "message_number": 4, "segments": [SEGMENT.hex(), bytes(32).hex()],
             "block_counts": [42, 0], "addresses": ["157.59.141.183:54321"]}
    m = bc.parse_probe_match(cxx_encode(match).decode())
    assert m["segments"] == [SEGMENT, bytes(32)] and m["block_counts"] == [42, 0]
    assert (m["message_id"], m["relates_to"], m["endpoint"], m["instance_id"], m["message_number"], m["addresses"]) == \
        ("urn:uuid:1", "urn:uuid:2", "urn:uuid:3", 1218765447, 4, ["157.59.141.183:54321"])


def test_refusals_reach_the_command_line():
    with pytest.raises(ValueError, match="MsgSize does not match the message"):
        cxx_decode("request", bc.nego_req() + b"\0")
    with pytest.raises(ValueError, match="DOCTYPE refused"):
        cxx_decode("probe", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x/>')


def test_the_client_reads_content_information_as_the_windows_vector_has_it():
    """../shared/vectors/pccrc.md V1: the client's own parse derives the segment ID the core does."""
    v1 = bytes.fromhex(
        "00010c80000000000000000000000100000000000000000000007e85010000000100"
        "d8d976354a4872e925761803f458d9daaa67f8e31c630fb74e6a312ef8a25aba"
        "11afc0d7949243f94f9c1fab35d9fd1e331fcf7811a2e01d3587b38d770a29e2"
        "02000000"
        "73c18ab8549110f8e90e71bbc3ab2aa8c44d13f4929499255b660f24ec77800b"
        "974bdd65567fdeeccdafe457a9503b4548f66ed3b188dcfda0ac382b09711acc")
    [segment] = bc.content_information_v1(v1)
    assert segment["id"] == SEGMENT and segment["secret"] == SECRET
    assert segment["length"] == 99710 and len(segment["block_hashes"]) == 2
    with pytest.raises(ValueError):
        bc.content_information_v1(v1 + b"\0")
