#!/usr/bin/env node
// es_client.mjs - a real SSE subscriber for spout's integration tests: the
// npm `eventsource` package (pinned in package.json), used as an application
// would use it, automatic reconnection included.
//
//   node es_client.mjs URL [--type NAME]... [--count N] [--opens K]
//                          [--until-data TEXT] [--timeout MS] [--log-requests]
//
// Listens for `message` and for each --type NAME. Prints one JSON line per
// thing that happens, on stdout:
//
//   {"kind":"open","n":1,"t":12}
//   {"kind":"event","type":"alert","id":"2","data":"a\nb","lastEventId":"2","origin":"http://..","t":40}
//   {"kind":"error","message":"...","code":null,"readyState":0,"t":900}
//   {"kind":"request","headers":{"accept":"text/event-stream","last-event-id":"3"},"t":3900}
//                              (only with --log-requests: what the library
//                               asked fetch() to send, before each connect)
//   {"kind":"done","reason":"goal"|"timeout","events":3,"opens":1,"errors":0,"t":60}
//
// "lastEventId" is MessageEvent.lastEventId as the library dispatched it;
// "id" is the same, or null when it is empty (the event carried no id).
// "t" is milliseconds since start.
//
// Exits 0 once the goal is met: at least N events (--count, default 1) and at
// least K open events (--opens, default 1), and, with --until-data, an event
// whose data is TEXT. Exits 3 after --timeout ms (default 10000) whatever
// happened, 2 on bad arguments. It never waits longer than the timeout.
import { EventSource } from 'eventsource';

const t0 = Date.now();
const now = () => Date.now() - t0;
const out = (obj) => process.stdout.write(JSON.stringify({ ...obj, t: now() }) + '\n');

function usage(msg) {
	process.stderr.write(`es_client.mjs: ${msg}\n` +
		'usage: node es_client.mjs URL [--type NAME]... [--count N] [--opens K] ' +
		'[--until-data TEXT] [--timeout MS] [--log-requests]\n');
	process.exit(2);
}

const opts = { url: null, types: [], count: 1, opens: 1, untilData: null, timeout: 10000, logRequests: false };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
	const a = argv[i];
	const val = () => {
		if (i + 1 >= argv.length) usage(`${a} needs a value`);
		return argv[++i];
	};
	const num = (s) => {
		if (!/^[0-9]+$/.test(s)) usage(`${a}: not a number: ${s}`);
		return Number(s);
	};
	if (a === '--type') opts.types.push(val());
	else if (a === '--count') opts.count = num(val());
	else if (a === '--opens') opts.opens = num(val());
	else if (a === '--until-data') opts.untilData = val();
	else if (a === '--timeout') opts.timeout = num(val());
	else if (a === '--log-requests') opts.logRequests = true;
	else if (a.startsWith('--')) usage(`unknown option ${a}`);
	else if (opts.url === null) opts.url = a;
	else usage(`unexpected argument ${a}`);
}
if (opts.url === null) usage('missing URL');

let events = 0, opens = 0, errors = 0, sawData = opts.untilData === null;
let finished = false;

const init = {};
if (opts.logRequests) {
	// Same fetch, only observed: the library still builds every request
	// (Accept, Last-Event-ID) and drives reconnection itself.
	init.fetch = (url, options) => {
		const headers = {};
		for (const [k, v] of Object.entries((options && options.headers) || {}))
			headers[k.toLowerCase()] = v;
		out({ kind: 'request', url: String(url), headers });
		return globalThis.fetch(url, options);
	};
}

const es = new EventSource(opts.url, init);

function finish(reason, code) {
	if (finished) return;
	finished = true;
	clearTimeout(timer);
	es.close();
	out({ kind: 'done', reason, events, opens, errors });
	// Exit once stdout is flushed (a pipe may be asynchronous); do not wait
	// for sockets or timers the fetch machinery may still hold.
	process.stdout.write('', () => process.exit(code));
	setTimeout(() => process.exit(code), 1000).unref();
}

function check() {
	if (events >= opts.count && opens >= opts.opens && sawData) finish('goal', 0);
}

const timer = setTimeout(() => finish('timeout', 3), opts.timeout);

es.addEventListener('open', () => {
	opens++;
	out({ kind: 'open', n: opens });
	check();
});
es.addEventListener('error', (e) => {
	errors++;
	out({ kind: 'error', message: e.message ?? null, code: e.code ?? null, readyState: es.readyState });
});

function onEvent(e) {
	if (finished) return;
	events++;
	out({
		kind: 'event',
		type: e.type,
		id: e.lastEventId === '' ? null : e.lastEventId,
		data: e.data,
		lastEventId: e.lastEventId,
		origin: e.origin,
	});
	if (opts.untilData !== null && e.data === opts.untilData) sawData = true;
	check();
}
for (const type of new Set(['message', ...opts.types])) es.addEventListener(type, onEvent);

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => finish('signal', 4));
