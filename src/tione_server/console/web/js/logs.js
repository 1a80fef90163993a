// Reading a run's log lines with DescribeLogs and its Context (spec §4.8), for following and for download.
import {call, project} from './api.js';

const PAGE = 1000;
const PAGES = 10; // spec §4.8: a Context pages through the first 10,000 lines; then a new query starts.

/** `2025-05-28T18:18:33+08` or a LogIdentity Timestamp -> an RFC 3339 time the server parses (µs precision). */
export function rfc3339(text) {
  const t = text.replace(/\.(\d{6})\d*Z$/, '.$1Z').replace(/([+-]\d\d)$/, '$1:00');
  return t.includes('T') ? t : new Date(t).toISOString();
}

/**
 * Every line of `runId` (one pod, or all when `pod` is ''), oldest first, from `from` (RFC 3339) up to now, in
 * batches; lines whose Id is in `seen` are skipped and the rest added to it. Returns the last line's Timestamp.
 */
export async function readLines(runId, pod, from, seen, onBatch, stillWanted = () => true) {
  let cursor = from;
  for (;;) {
    const first = {Service: 'TRAIN', ServiceId: runId, StartTime: rfc3339(cursor), Order: 'ASC', Limit: PAGE, ...project()};
    if (pod) first.PodName = pod;
    let context = '';
    let pages = 0;
    let full = false;
    while (pages < PAGES) {
      const params = context ? {Service: 'TRAIN', ServiceId: runId, Context: context, ...project()} : first;
      const r = await call('DescribeLogs', params);
      if (!stillWanted()) return cursor;
      pages += 1;
      const fresh = [];
      for (const l of r.Content || []) {
        if (seen.has(l.Id)) continue;
        seen.add(l.Id);
        fresh.push({ts: l.Timestamp, pod: l.PodName, text: l.Message});
      }
      if (fresh.length) {
        cursor = fresh[fresh.length - 1].ts;
        onBatch(fresh);
      }
      if (!r.Context) break;
      context = r.Context;
      full = pages === PAGES;
    }
    if (!full) return cursor; // caught up; otherwise a new query goes on from the last line read
  }
}
