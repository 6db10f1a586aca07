// The control channel's requests (queue/control.ts) as the daemon reads them: ids are queue ids,
// checked in the daemon whatever the client checked (issue 20, item 8).
import { describe, expect, it } from 'vitest';
import { parseRequest } from '../../src/queue/control.js';

describe('parseRequest', () => {
  it.each([
    '{"op":"delete","id":"../victim"}',
    '{"op":"delete","id":"0MXCB1ZSZ1C9510EA69/../../etc"}',
    '{"op":"retry","id":"a b"}',
    '{"op":"hold","id":"../../x","destination":null}',
    '{"op":"release","id":42,"destination":null}',
    '{"op":"delete","id":null}',
    'not json',
  ])('refuses %s', (line) => expect(parseRequest(line)).toBeNull());
  it('takes queue ids, and null where a command means every message', () => {
    expect(parseRequest('{"op":"delete","id":"0MXCB1ZSZ1C9510EA69"}')).toEqual({ op: 'delete', id: '0MXCB1ZSZ1C9510EA69' });
    expect(parseRequest('{"op":"retry","id":null}')).toEqual({ op: 'retry', id: null });
    expect(parseRequest('{"op":"hold","id":null,"destination":"contoso.com"}')).toEqual({ op: 'hold', id: null, destination: 'contoso.com' });
    expect(parseRequest('{"op":"tls-report","now":true}')).toEqual({ op: 'tls-report', now: true });
  });
});
