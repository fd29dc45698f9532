#!/usr/bin/env node
// Subscribe to spout topics with the `eventsource` npm package (3.x), which
// reconnects by itself and sends Last-Event-ID when it does.
//
//   npm install eventsource@3
//   node subscribe.mjs news 'orders.*.created'
//   node subscribe.mjs --type alert --type price news     listen for named events too
//
// Environment: SPOUT_URL (default http://localhost:8080) and SPOUT_TOKEN (a
// JWT, sent as "Authorization: Bearer", when the broker requires one).
// Prints one JSON object per event on stdout: {"id": ..., "event": ..., "data": ...}.
import { EventSource } from 'eventsource';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';

const BASE = process.env.SPOUT_URL || 'http://localhost:8080';
const token = () => process.env.SPOUT_TOKEN;   // fetch a fresh one here if it can expire
const READ_TIMEOUT_MS = 45000;   // without a byte; > 2 x the broker's --heartbeat-ms
const MAX_BACKOFF_MS = 60000;

const { values, positionals: topics } = parseArgs({
	options: { type: { type: 'string', multiple: true }, 'last-event-id': { type: 'string' } },
	allowPositionals: true,
});
if (topics.length === 0) {
	console.error('usage: node subscribe.mjs [--type NAME]... [--last-event-id ID] TOPIC...');
	process.exit(2);
}

const url = new URL('/events', BASE);
for (const t of topics) url.searchParams.append('topic', t);

let lastEventId = values['last-event-id'] ?? '';
let failures = 0;        // connection attempts failed in a row
let es = null;
let reconnecting = false;  // the library's next request is one of its reconnections

const backoff = (n) => Math.min(MAX_BACKOFF_MS, 1000 * 2 ** n) * (1 + Math.random() / 2);

// Every request the library makes goes through here. Its own reconnections
// send its Last-Event-ID; a new EventSource (after the library gave up,
// below) starts without one, so give it ours.
async function fetchWithAuth(input, init) {
	// The library waits the broker's retry: (jittered per connection) before
	// each reconnection; while they keep failing, back off further.
	if (reconnecting && failures > 1) await sleep(backoff(failures - 1), null, { signal: init.signal });
	const headers = { ...init.headers };
	if (token()) headers.Authorization = `Bearer ${token()}`;
	if (lastEventId && !headers['Last-Event-ID']) headers['Last-Event-ID'] = lastEventId;
	const res = await fetch(input, { ...init, headers });
	if (!res.ok || !res.body) return res;
	// A dead connection sends nothing, not even the broker's heartbeats: fail
	// a stream silent for READ_TIMEOUT_MS, and the library reconnects.
	let timer;
	const watchdog = new TransformStream({
		start(ctrl) {
			timer = setTimeout(() => ctrl.error(new Error('no data: connection dead')), READ_TIMEOUT_MS);
			timer.unref();
		},
		transform(chunk, ctrl) {
			timer.refresh();
			ctrl.enqueue(chunk);
		},
		flush() { clearTimeout(timer); },
	});
	return new Response(res.body.pipeThrough(watchdog), { status: res.status, headers: res.headers });
}

function print(ev) {
	if (ev.lastEventId) lastEventId = ev.lastEventId;
	console.log(JSON.stringify({ id: ev.lastEventId || lastEventId, event: ev.type, data: ev.data }));
}

function connect() {
	reconnecting = false;
	es = new EventSource(url, { fetch: fetchWithAuth });
	es.addEventListener('open', () => {
		failures = 0;
		console.error(`subscribe: connected to ${url} (Last-Event-ID: ${lastEventId || 'none'})`);
	});
	// Events with an "event:" field reach only listeners for that name.
	es.addEventListener('message', print);
	for (const type of values.type ?? []) es.addEventListener(type, print);
	es.addEventListener('spout-gap', (ev) => {
		// History no longer reaches back to our last id (or the broker
		// restarted): some events were missed. Reload the state they built
		// from its source of truth; the stream goes on from here.
		const gap = JSON.parse(ev.data);
		console.error(`subscribe: missed events after id ${gap.last_event_id} (${gap.reason}): resynchronise`);
		print(ev);
	});
	es.addEventListener('error', (err) => {
		failures++;
		if (es.readyState !== EventSource.CLOSED) {
			// Connection lost: the library retries after the broker's retry:
			reconnecting = true;
			console.error(`subscribe: ${err.message ?? 'stream ended'}; the library reconnects`);
			return;
		}
		// The library gave up (a non-200 answer): 4xx but 408/429 will not
		// get better by retrying; 5xx, 408 and 429 might, with backoff.
		es.close();
		if (err.code >= 400 && err.code < 500 && err.code !== 408 && err.code !== 429) {
			console.error(`subscribe: ${err.message}: giving up`);
			process.exit(1);
		}
		const delay = backoff(failures);
		console.error(`subscribe: ${err.message}; reconnecting in ${(delay / 1000).toFixed(1)}s`);
		setTimeout(connect, delay);
	});
}

connect();
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { es.close(); process.exit(0); });
