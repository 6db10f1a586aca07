#!/usr/bin/env python3
"""The independent side of the sender-authentication tests: dkimpy (Debian python3-dkim, with
python3-nacl for Ed25519 and python3-authres for ARC) signs what the gateway verifies and
verifies what it signs and seals. DNS comes from a JSON file of TXT records (name -> text), so
nothing leaves the machine.

  dkimpy.py sign DOMAIN SELECTOR KEYFILE [--length]   < message > signed message
  dkimpy.py arc-sign DOMAIN SELECTOR KEYFILE SRV_ID   < message > sealed message
  dkimpy.py verify RECORDS.json                        < message > JSON: one result per DKIM-Signature
  dkimpy.py arc-verify RECORDS.json                    < message > JSON: {cv, comment}
"""
import json
import sys

import dkim


def dnsfunc_from(path):
    with open(path) as f:
        records = json.load(f)

    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        t = records.get(n.rstrip('.').lower())
        return t.encode() if t is not None else None

    return dnsfunc


def main():
    cmd = sys.argv[1]
    msg = sys.stdin.buffer.read()
    if cmd == 'sign':
        domain, selector, keyfile = sys.argv[2:5]
        key = open(keyfile, 'rb').read()
        sig = dkim.sign(msg, selector.encode(), domain.encode(), key, length='--length' in sys.argv,
                        include_headers=[b'from', b'to', b'subject', b'date', b'message-id'])
        sys.stdout.buffer.write(sig + msg)
    elif cmd == 'arc-sign':
        domain, selector, keyfile, srv_id = sys.argv[2:6]
        key = open(keyfile, 'rb').read()
        headers = dkim.arc_sign(msg, selector.encode(), domain.encode(), key, srv_id.encode(),
                                include_headers=[b'from', b'to', b'subject', b'date', b'message-id'])
        sys.stdout.buffer.write(b''.join(headers) + msg)
    elif cmd == 'verify':
        dnsfunc = dnsfunc_from(sys.argv[2])
        d = dkim.DKIM(msg)
        count = sum(1 for line in msg.split(b'\r\n\r\n', 1)[0].split(b'\r\n') if line.lower().startswith(b'dkim-signature:'))
        out = []
        for i in range(count):
            ok = d.verify(idx=i, dnsfunc=dnsfunc)
            out.append({'ok': bool(ok), 'domain': (d.domain or b'').decode(), 'selector': (d.selector or b'').decode(),
                        'algorithm': (d.signature_fields.get(b'a', b'')).decode(), 'headers': (d.signature_fields.get(b'h', b'')).decode()})
        print(json.dumps(out))
    elif cmd == 'arc-verify':
        dnsfunc = dnsfunc_from(sys.argv[2])
        cv, results, comment = dkim.arc_verify(msg, dnsfunc=dnsfunc)
        print(json.dumps({'cv': cv.decode() if isinstance(cv, bytes) else str(cv), 'comment': comment}))
    else:
        sys.exit('unknown command ' + cmd)


if __name__ == '__main__':
    main()
