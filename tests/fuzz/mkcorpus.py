#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/).

The seeds are committed; this only says how they were made, so a change of
the wire format or of a target's input language can remake them. Each seed
is small and reaches one path a random input would take long to find.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# lib/proto/ctl.h
CTL_MAGIC, CTL_VERSION, CTL_REPLY = 0x7067, 1, 0x80
HELLO, CREATE, JOIN, GROUPS, REFUSED = 1, 2, 5, 9, 65
T_NAME, T_NODE, T_RING, T_MAXMSG, T_STALL, T_MODE, T_PID = 1, 2, 3, 4, 5, 6, 7
T_SLOT, T_STATEWORD, T_CURSOR, T_MEMBER, T_GROUP, T_TRUNCATED = 9, 10, 11, 13, 14, 15


def tlv(tag, val):
    pad = (-len(val)) % 4
    return struct.pack('<HH', tag, len(val)) + val + b'\0' * pad


def u32(tag, v):
    return tlv(tag, struct.pack('<I', v))


def u64(tag, v):
    return tlv(tag, struct.pack('<Q', v))


def msg(typ, body, ident=7, status=0):
    return struct.pack('<HBBIIi', CTL_MAGIC, CTL_VERSION, typ, 16 + len(body), ident,
                       status) + body


def ctl_seeds():
    group = struct.pack('<QQQII64s', 1 << 20, 3, 5, 2, 0o640, b'node-a') + b'grp'
    join = (tlv(T_NAME, b'chat') + u32(T_SLOT, 3) + u32(T_STATEWORD, 0x101) +
            u64(T_CURSOR, 42) + tlv(T_MEMBER, struct.pack('<i', 100) + b'n1') +
            tlv(T_MEMBER, struct.pack('<i', -1) + b'b.c_d@e-f'))
    create = (tlv(T_NAME, b'g') + tlv(T_NODE, b'n1') + u64(T_RING, 1 << 16) +
              u64(T_MAXMSG, 4096) + u32(T_STALL, 100) + u32(T_MODE, 0o600))
    # mode 2: type, id, status, then (op, tag, operands) of ctl_put* calls
    script = struct.pack('<BIi', JOIN | CTL_REPLY, 9, -2)
    script += bytes([0, T_SLOT]) + struct.pack('<I', 5)
    script += bytes([1, T_CURSOR]) + struct.pack('<Q', 1 << 40)
    script += bytes([2, T_NAME, 4]) + b'chat'
    script += bytes([3, 0]) + struct.pack('<i', 77) + bytes([2]) + b'n1'
    script += bytes([4, T_GROUP, 5]) + b'abcde'
    script += bytes([5, T_NODE]) + struct.pack('<H', 300)
    return {
        'hello': b'\0' + msg(HELLO, tlv(T_NODE, b'n1') + u32(T_PID, 1234)),
        'join_reply': b'\0' + msg(JOIN | CTL_REPLY, join, status=0),
        'groups_reply': b'\0' + msg(GROUPS | CTL_REPLY, tlv(T_GROUP, group) +
                                    u64(T_TRUNCATED, 2)),
        'refused': b'\0' + msg(REFUSED, b'', status=-24),
        'bad_len': b'\0' + msg(HELLO, struct.pack('<HH', T_NAME, 200) + b'x' * 8),
        'body_create': b'\1' + bytes([CREATE]) + create,
        'round_trip': b'\2' + script,
    }


# tests/fuzz/fuzz_ring_read.c: operations (op % 12) and their operands
PATCH_HDR, PATCH_WRITERS, PATCH_ORDER, PATCH_AREA, PATCH_CHDR, PATCH_MEMBER = range(6)
ENTRY, RECORD, READ, CLAIM, DAEMON, READ_OTHER = range(6, 12)
TAIL_OFF, CACHED_MIN_OFF = 64, 128


def claim(who, n, how):  # how % 3: 0 commit, 1 abort, 2 leave open; 4: event reserve
    return bytes([CLAIM, who]) + struct.pack('<H', n) + bytes([how])


def read(release=1):
    return bytes([READ, release])


def entry(k, st, writer, unit, dlap=0):
    return bytes([ENTRY, k, st, writer]) + struct.pack('<H', unit) + bytes([dlap & 0xff])


def record(area, unit, k, n, kind=2, flags=0):
    return (bytes([RECORD, area]) + struct.pack('<H', unit) + bytes([k]) +
            struct.pack('<H', n) + bytes([kind, flags]))


def patch(op, off, data, wide=False, area=None):
    head = bytes([op]) + (bytes([area]) if area is not None else b'')
    head += struct.pack('<H', off) if wide else bytes([off])
    return head + bytes([len(data) - 1]) + data


def ring_seeds():
    # near(rd, k) is the reader's position + k - 8: k = 8 is where it reads
    return {
        'traffic': b'\0' + claim(1, 100, 0) + claim(2, 5000, 0) + read() + read(0) +
        bytes([READ_OTHER, 1]) + claim(1, 0, 1) + claim(2, 16384, 2) + read() + read(),
        'lap_edge': b'\1' + struct.pack('<Q', 5 * 2048 - 3)[:6] + claim(1, 64, 0) * 6 +
        read() * 6,
        'forged_ok': b'\0' + record(3, 10, 8, 100) + entry(8, 1, 3, 10) + read(),
        'forged_past_end': b'\0' + record(3, 2047, 8, 1000) + entry(8, 1, 3, 2047) + read(),
        'cancelled_run': b'\0' + claim(1, 10, 2) + bytes([DAEMON, 8, 3]) + claim(2, 10, 0) +
        entry(10, 2, 0, 0) + read() + bytes([DAEMON, 1, 4]) + read(),
        'forged_tail': b'\0' + patch(PATCH_HDR, TAIL_OFF, struct.pack('<Q', 1 << 40)) +
        patch(PATCH_HDR, CACHED_MIN_OFF, struct.pack('<Q', 1 << 39)) + claim(1, 10, 0) +
        read(),
        'evicted': b'\0' + claim(1, 10, 0) + bytes([DAEMON, 0, 5]) + read() +
        patch(PATCH_MEMBER, 8, struct.pack('<I', 0x101)) + read(),
        'area_scribble': b'\0' + claim(1, 200, 0) + read() +
        patch(PATCH_AREA, 0, b'\xff' * 32, wide=True, area=1) + claim(1, 30000 % 16448, 0) +
        claim(1, 8000, 0) + read(),
    }


# lib/proto/wire.h
W_MAGIC, W_VERSION = 0x646e6770, 1
W_HELLO, W_PROOF, W_PING, W_PONG, W_PEERS, W_BYE = range(1, 7)
W_GROUP, W_GONE, W_CLAIM, W_CREATE, W_DELETE, W_REPLY = range(7, 13)
W_FRAME_MAX = 16 * 1024 * 1024 + 256


def frame(typ, payload, flags=0, length=None):
    n = len(payload) if length is None else length
    return struct.pack('<HHI', typ, flags, n) + payload


def hello(node, flags=3, version=W_VERSION):
    return struct.pack('<IHH32s32s64s', W_MAGIC, version, flags, bytes(range(32)),
                       bytes(range(32, 64)), node)


def peer(node, addr):
    return struct.pack('<64s64s', node, addr)


def ping(ident, sent_ns):
    return struct.pack('<Qq', ident, sent_ns)


def group(name, master=b'node-a', created_ns=1 << 60, serial=3):
    return struct.pack('<qQQIIIIQ64s256s', created_ns, 1 << 20, 4096, 250, 0o640, 1000, 100,
                       serial, master, name)


def claim_req(ident, name):
    return struct.pack('<Q256s', ident, name)


def create_req(ident, name, ring=0, max_msg=0):
    return struct.pack('<QQQIIII256s', ident, ring, max_msg, 100, 0o600, 1000, 1000, name)


def delete_req(ident, name):
    return struct.pack('<QII256s', ident, 1000, 1000, name)


def reply(ident, status, pad=0):
    return struct.pack('<QiI', ident, status, pad)


def wire_seeds():
    peers = (peer(b'n2', b'10.0.0.2:7000') + peer(b'n3', b'') +
             peer(b'n4', b'[fe80::1]:65535') + peer(b'n5.example_x@y', b'host-5.lan:1'))
    # mode 2: buffer size, then (type, length, payload) per wire_put
    script = struct.pack('<H', 600)
    for typ, payload in ((W_PING, ping(1, 2)), (W_BYE, b''), (W_PROOF, b'\x11' * 32),
                         (0, b''), (W_PEERS, peer(b'n', b'h:1')[:200])):
        script += bytes([typ, len(payload)]) + payload
    return {
        'handshake': b'\0' + frame(W_HELLO, hello(b'node-a')) + frame(W_PROOF, b'\xa5' * 32),
        'traffic': b'\0' + frame(W_PING, ping(7, -1)) + frame(W_PONG, ping(7, -1)) +
        frame(W_PEERS, peers) + frame(W_PEERS, b'') + frame(W_BYE, b''),
        'other_version': b'\0' + frame(W_HELLO, hello(b'b@c', flags=0, version=2)),
        'cut_short': b'\0' + frame(W_PING, ping(1, 1)) + frame(W_PEERS, peers)[:200],
        'huge': b'\0' + frame(W_BYE, b'') + frame(W_PEERS, b'', length=W_FRAME_MAX + 1),
        'addr_name': b'\1' + b'node-1.example:7000',
        'addr_v6': b'\1' + b'[::ffff:10.0.0.1]:65535',
        'put_script': b'\2' + script,
        # the namespace: one of each, then each rule broken once
        'namespace': b'\0' + frame(W_GROUP, group(b'chat')) +
        frame(W_GONE, struct.pack('<Q', 0) + b'old'.ljust(256, b'\0')) + frame(W_CLAIM, claim_req(1, b'n' * 255)) +
        frame(W_CREATE, create_req(2, b'a b:c')) + frame(W_DELETE, delete_req(3, b'chat')) +
        frame(W_REPLY, reply(1, 0)) + frame(W_REPLY, reply(2, -4095)),
        'namespace_bad': b'\0' + frame(W_GROUP, group(b'chat', master=b'a/b')) +
        frame(W_GONE, struct.pack('<Q', 0) + b'a\0b'.ljust(256, b'\0')) + frame(W_CLAIM, claim_req(1, b'x/y')) +
        frame(W_CREATE, create_req(2, b'n' * 256)) + frame(W_DELETE, delete_req(3, b'')) +
        frame(W_REPLY, reply(1, 1)) + frame(W_REPLY, reply(2, -4096)) +
        frame(W_REPLY, reply(3, 0, pad=1)) + frame(W_REPLY, reply(4, -2)[:15]),
    }


def main():
    for target, seeds in (('fuzz_ctl', ctl_seeds()), ('fuzz_ring_read', ring_seeds()),
                          ('fuzz_wire', wire_seeds())):
        d = os.path.join(HERE, 'corpus', target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), 'wb') as f:
                f.write(data)
    return 0


if __name__ == '__main__':
    sys.exit(main())
