#!/usr/bin/env node
// browser.mjs - a real browser as an SSE subscriber for spout's integration
// tests: Debian's Chromium (/usr/bin/chromium), headless, driven by
// playwright-core (pinned in package.json; it downloads no browser).
//
//   node browser.mjs --spout-port P --page-port Q --topic T [--type NAME]...
//                    [--expect events|none] [--count N] [--settle MS]
//                    [--timeout MS] [--screenshot FILE]
//
// Serves a page on http://127.0.0.1:Q/ (a different origin from spout's
// http://127.0.0.1:P) whose script opens
//   new EventSource('http://127.0.0.1:P/events/T')
// and records `message` and each --type NAME into window.received, and every
// open/error into window.opens / window.errors. What the page records is
// streamed to stdout as JSON lines as it happens:
//
//   {"kind":"page","url":"http://127.0.0.1:Q/"}      the page script is running
//   {"kind":"open","n":1}                          EventSource open event
//   {"kind":"event","type":"alert","data":"a\nb","lastEventId":"2","origin":"http://127.0.0.1:P"}
//   {"kind":"error","readyState":2}                EventSource error event
//   {"kind":"console","level":"error","text":"..."}  page console (CORS errors show here)
//   {"kind":"done","reason":...,"received":[...],"opens":N,"errors":[...],"readyState":R,"screenshot":FILE}
//
// --expect events (default): done once N (--count) events arrived.
// --expect none: done --settle ms (default 1500) after the first error event,
//   or after the first open (which a refused cross-origin stream never gets).
// Exits 0 when done that way, 3 on --timeout (default 15000 ms), 2 on bad
// arguments, 1 on any other failure (browser did not start, ...). Chromium
// is always closed before exit; the whole script is bounded by the timeout.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const t0 = Date.now();
const now = () => Date.now() - t0;
const out = (obj) => process.stdout.write(JSON.stringify({ ...obj, t: now() }) + '\n');

function usage(msg) {
	process.stderr.write(`browser.mjs: ${msg}\n` +
		'usage: node browser.mjs --spout-port P --page-port Q --topic T [--type NAME]... ' +
		'[--expect events|none] [--count N] [--settle MS] [--timeout MS] [--screenshot FILE]\n');
	process.exit(2);
}

const opts = {
	spoutPort: null, pagePort: null, topic: null, types: [], expect: 'events', count: 1,
	settle: 1500, timeout: 15000, screenshot: null,
	chromium: process.env.CHROMIUM || '/usr/bin/chromium',
};
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
	if (a === '--spout-port') opts.spoutPort = num(val());
	else if (a === '--page-port') opts.pagePort = num(val());
	else if (a === '--topic') opts.topic = val();
	else if (a === '--type') opts.types.push(val());
	else if (a === '--expect') opts.expect = val();
	else if (a === '--count') opts.count = num(val());
	else if (a === '--settle') opts.settle = num(val());
	else if (a === '--timeout') opts.timeout = num(val());
	else if (a === '--screenshot') opts.screenshot = val();
	else usage(`unexpected argument ${a}`);
}
if (opts.spoutPort === null || opts.pagePort === null || opts.topic === null)
	usage('--spout-port, --page-port and --topic are required');
if (opts.expect !== 'events' && opts.expect !== 'none') usage('--expect is events or none');

const streamUrl = `http://127.0.0.1:${opts.spoutPort}/events/${encodeURIComponent(opts.topic)}`;
const pageUrl = `http://127.0.0.1:${opts.pagePort}/`;

// The page. Its script records everything and reports it through
// window.report (bound by playwright to this process) as it happens.
const config = JSON.stringify({ url: streamUrl, types: opts.types }).replace(/</g, '\\u003c');
const page_html = `<!doctype html>
<html><head><meta charset="utf-8"><title>spout EventSource test</title>
<style>body{font:14px monospace;margin:1em} pre{background:#eee;padding:.5em;white-space:pre-wrap}</style>
</head><body>
<h1>spout: cross-origin EventSource</h1>
<p>page origin <b id="origin"></b>, stream <b id="url"></b></p>
<p>state: <b id="state">connecting</b>, opens <b id="opens">0</b>, errors <b id="errors">0</b></p>
<pre id="log"></pre>
<script>
const cfg = ${config};
window.received = []; window.errors = []; window.opens = 0;
document.getElementById('origin').textContent = location.origin;
document.getElementById('url').textContent = cfg.url;
const report = (x) => { if (window.report) window.report(x); };
const show = () => {
	document.getElementById('opens').textContent = window.opens;
	document.getElementById('errors').textContent = window.errors.length;
	document.getElementById('log').textContent =
		window.received.map((e) => e.type + ' #' + e.lastEventId + ': ' + JSON.stringify(e.data)).join('\\n');
};
const es = new EventSource(cfg.url);
window.es = es;
es.onopen = () => {
	window.opens++;
	document.getElementById('state').textContent = 'open';
	show();
	report({ kind: 'open', n: window.opens });
};
es.onerror = () => {
	const e = { readyState: es.readyState };
	window.errors.push(e);
	document.getElementById('state').textContent = 'error (readyState ' + es.readyState + ')';
	show();
	report({ kind: 'error', ...e });
};
const onEvent = (ev) => {
	const e = { type: ev.type, data: ev.data, lastEventId: ev.lastEventId, origin: ev.origin };
	window.received.push(e);
	show();
	report({ kind: 'event', ...e });
};
for (const t of new Set(['message', ...cfg.types])) es.addEventListener(t, onEvent);
report({ kind: 'page', url: location.href });
</script></body></html>
`;

const server = http.createServer((req, res) => {
	if (req.method === 'GET' && (req.url === '/' || req.url === '/index.html')) {
		res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
		res.end(page_html);
	} else if (req.url === '/favicon.ico') {
		res.writeHead(204);   // no favicon, and no 404 in the console
		res.end();
	} else {
		res.writeHead(404, { 'Content-Type': 'text/plain' });
		res.end('not found\n');
	}
});

let browser = null;
let exiting = false;

async function shutdown(code) {
	if (exiting) return;
	exiting = true;
	const hard = setTimeout(() => process.exit(code), 5000);
	hard.unref();
	try { if (browser) await browser.close(); } catch { /* already gone */ }
	server.close();
	process.stdout.write('', () => process.exit(code));
}

// The whole run is bounded, whatever the browser does.
const watchdog = setTimeout(async () => {
	out({ kind: 'done', reason: 'timeout', ...(await snapshot(true)) });
	shutdown(3);
}, opts.timeout);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => shutdown(4));

let page = null;
async function snapshot(final) {
	const s = { received: [], opens: 0, errors: [], readyState: null, screenshot: null };
	if (!page) return s;
	try {
		Object.assign(s, await page.evaluate(() => ({
			received: window.received || [], opens: window.opens || 0,
			errors: window.errors || [], readyState: window.es ? window.es.readyState : null,
		})));
		if (final && opts.screenshot) {
			fs.mkdirSync(path.dirname(opts.screenshot), { recursive: true });
			await page.screenshot({ path: opts.screenshot, fullPage: true, timeout: 5000 });
			s.screenshot = opts.screenshot;
		}
	} catch (e) {
		s.snapshotError = String(e && e.message || e);
	}
	return s;
}

async function main() {
	await new Promise((resolve, reject) => {
		server.once('error', reject);
		server.listen(opts.pagePort, '127.0.0.1', resolve);
	});
	browser = await chromium.launch({
		executablePath: opts.chromium,
		headless: true,
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			'--disable-background-networking', '--disable-component-update', '--disable-sync'],
		timeout: Math.min(opts.timeout, 10000),
	});
	const context = await browser.newContext();   // fresh profile: nothing cached
	page = await context.newPage();

	let settleTimer = null;
	let resolveDone;
	const done = new Promise((r) => { resolveDone = r; });
	let nevents = 0;
	const startSettle = () => {
		if (settleTimer === null) settleTimer = setTimeout(() => resolveDone('settled'), opts.settle);
	};
	await page.exposeFunction('report', (x) => {
		out(x);
		if (x.kind === 'event') nevents++;
		if (opts.expect === 'events' && nevents >= opts.count) resolveDone('count');
		if (opts.expect === 'none' && (x.kind === 'error' || x.kind === 'open')) startSettle();
	});
	page.on('console', (m) => out({ kind: 'console', level: m.type(), text: m.text() }));
	page.on('pageerror', (e) => out({ kind: 'pageerror', text: String(e && e.message || e) }));
	page.on('requestfailed', (r) => out({ kind: 'requestfailed', url: r.url(), failure: r.failure() && r.failure().errorText }));

	await page.goto(pageUrl, { waitUntil: 'load', timeout: Math.min(opts.timeout, 10000) });
	const reason = await done;
	clearTimeout(watchdog);
	out({ kind: 'done', reason, ...(await snapshot(true)) });
	await shutdown(0);
}

main().catch(async (e) => {
	clearTimeout(watchdog);
	out({ kind: 'fatal', error: String(e && e.stack || e) });
	await shutdown(1);
});
