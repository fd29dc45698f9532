#!/usr/bin/env node
// example_page.mjs - open docs/examples/browser/index.html (the page
// docs/clients.md shows, unmodified) in Debian's Chromium, headless, driven
// by playwright-core, and report what the page shows.
//
//   node example_page.mjs --page FILE --page-port Q --spout URL --topic T
//                         [--token JWT] [--until-data TEXT] [--timeout MS]
//
// Serves FILE at http://127.0.0.1:Q/ and opens
//   http://127.0.0.1:Q/?spout=URL&topic=T[&token=JWT]
// Then reads the page's list (#events li, newest first) every 50 ms and
// prints one JSON line per new entry, oldest first, plus status changes,
// console lines and page errors:
//
//   {"kind":"page"}                                     the page loaded
//   {"kind":"item","type":"alert","id":"5","text":"alert #5: a\nb"}
//   {"kind":"status","text":"open"}
//   {"kind":"console","level":"warning","text":"..."}
//   {"kind":"done","reason":"goal"|"timeout"}
//
// Exits 0 once an item whose text ends in ": TEXT" appeared (--until-data),
// 3 on --timeout (default 20000 ms), 2 on bad arguments, 1 on any other
// failure. Chromium is always closed before exit.
import http from 'node:http';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const t0 = Date.now();
const out = (obj) => process.stdout.write(JSON.stringify({ ...obj, t: Date.now() - t0 }) + '\n');

let opts;
try {
	({ values: opts } = parseArgs({
		options: {
			page: { type: 'string' }, 'page-port': { type: 'string' }, spout: { type: 'string' },
			topic: { type: 'string' }, token: { type: 'string' }, 'until-data': { type: 'string' }, timeout: { type: 'string', default: '20000' },
		},
	}));
} catch (e) {
	process.stderr.write(`example_page.mjs: ${e.message}\n`);
	process.exit(2);
}
if (!opts.page || !opts['page-port'] || !opts.spout || !opts.topic) {
	process.stderr.write('usage: node example_page.mjs --page FILE --page-port Q --spout URL --topic T ' +
		'[--token JWT] [--until-data TEXT] [--timeout MS]\n');
	process.exit(2);
}
const html = fs.readFileSync(opts.page);
const server = http.createServer((req, res) => {
	if (req.method === 'GET' && new URL(req.url, 'http://x').pathname === '/') {
		res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
		res.end(html);
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
	setTimeout(() => process.exit(code), 5000).unref();
	try { if (browser) await browser.close(); } catch { /* already gone */ }
	server.close();
	process.stdout.write('', () => process.exit(code));
}
const watchdog = setTimeout(() => { out({ kind: 'done', reason: 'timeout' }); shutdown(3); },
	Number(opts.timeout));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => shutdown(4));

async function main() {
	const port = Number(opts['page-port']);
	await new Promise((resolve, reject) => {
		server.once('error', reject);
		server.listen(port, '127.0.0.1', resolve);
	});
	browser = await chromium.launch({
		executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
		headless: true,
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			'--disable-background-networking', '--disable-component-update', '--disable-sync'],
		timeout: 10000,
	});
	const page = await (await browser.newContext()).newPage();
	page.on('console', (m) => out({ kind: 'console', level: m.type(), text: m.text() }));
	page.on('pageerror', (e) => out({ kind: 'pageerror', text: String(e && e.message || e) }));
	const q = new URLSearchParams({ spout: opts.spout, topic: opts.topic });
	if (opts.token) q.set('token', opts.token);
	await page.goto(`http://127.0.0.1:${port}/?${q}`, { waitUntil: 'load', timeout: 10000 });
	out({ kind: 'page' });

	let seen = 0;
	let status = null;
	for (;;) {
		const snap = await page.evaluate(() => ({
			status: document.getElementById('status').textContent,
			items: [...document.querySelectorAll('#events li')].reverse()
				.map((li) => ({ type: li.dataset.type, id: li.dataset.id, text: li.textContent })),
		}));
		if (snap.status !== status) {
			status = snap.status;
			out({ kind: 'status', text: status });
		}
		for (const item of snap.items.slice(seen)) {
			out({ kind: 'item', ...item });
			if (opts['until-data'] !== undefined && item.text.endsWith(`: ${opts['until-data']}`)) {
				clearTimeout(watchdog);
				out({ kind: 'done', reason: 'goal' });
				return shutdown(0);
			}
		}
		seen = snap.items.length;
		await new Promise((r) => setTimeout(r, 50));
	}
}

main().catch((e) => {
	clearTimeout(watchdog);
	out({ kind: 'fatal', error: String(e && e.stack || e) });
	shutdown(1);
});
