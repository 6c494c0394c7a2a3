import { EventStream } from './events.js';
import { parseEventLine, ReleaseEventSchema } from './event-schema.js';
import { registerSecret } from './secrets.js';

describe('event schema', () => {
  test('a stream writes one valid JSON object per line, without undefined fields, secrets redacted', () => {
    const lines: string[] = [];
    const stream = new EventStream('release-run', (line) => lines.push(line));
    stream.ticket = '1234';
    registerSecret('hunter2-secret');
    stream.emit('prepare', 'backup', { service: 'web', at: '20260518_153012', bytes: 2048, note: 'pw hunter2-secret', skip: undefined });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith('\n')).toBe(true);
    expect(lines[0]!.trimEnd()).not.toContain('\n');
    const event = parseEventLine(lines[0]!);
    expect(event).toMatchObject({ schema: 1, ticket: '1234', verb: 'release-run', phase: 'prepare', event: 'backup', dry_run: false });
    expect(event.fields).toEqual({ service: 'web', at: '20260518_153012', bytes: 2048, note: 'pw ***' });
  });

  test('known events must carry their fields; unknown keys at the top level are refused', () => {
    const stream = new EventStream('release-run');
    expect(ReleaseEventSchema.safeParse(stream.build('orchestrator', 'failed', { rc: 7 })).success).toBe(false);
    expect(ReleaseEventSchema.safeParse(stream.build('orchestrator', 'failed', { rc: 7, phase_failed: 'verify' })).success).toBe(true);
    expect(ReleaseEventSchema.safeParse(stream.build('prepare', 'backup', { service: 'web', at: 'x' })).success).toBe(false);
    expect(ReleaseEventSchema.safeParse({ ...stream.build('verify', 'done', { rc: 0 }), extra: 1 }).success).toBe(false);
    expect(ReleaseEventSchema.safeParse(stream.build('verify', 'some-new-event', { anything: [1, 'two'] })).success).toBe(true);
  });

  test('a listener that throws does not stop the emit', () => {
    const stream = new EventStream('release-revert');
    const seen: string[] = [];
    stream.on(() => { throw new Error('boom'); });
    stream.on((event) => seen.push(event.event));
    stream.emit('restore', 'done', { rc: 0 });
    expect(seen).toEqual(['done']);
  });
});
