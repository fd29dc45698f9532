#!/usr/bin/env node
// dashboard.mjs - spoutd's live dashboard (GET /dashboard) in a real browser:
// Debian's Chromium, headless, via playwright-core.
//
//   node dashboard.mjs --spout-port P [--updates N] [--timeout MS] [--screenshot FILE]
//
// Opens http://127.0.0.1:P/dashboard and reports, as JSON lines on stdout:
//   {"kind":"update","updates":N,"conns":..,"deliveries_per_s":..,"p99":..}
//     each time the page has drawn a new snapshot (from window.spoutDash)
//   {"kind":"console","level":..,"text":..}   page console (CSP errors show here)
//   {"kind":"done","reason":"updates"|"timeout","updates":N,"history":[...],
//    "inked":{canvas id: pixels drawn},"tiles":[...],"state":"ready",
//    "screenshot":FILE}
// Done after --updates snapshots (default 6). Exits 0 when done that way,
// 3 on --timeout (default 30000 ms), 2 on bad arguments, 1 on any other
// failure. Chromium is always closed before exit.
import { chromium } from 'playwright-core';

const t0 = Date.now();
const out = (obj) => process.stdout.write(JSON.stringify({ ...obj, t: Date.now() - t0 }) + '\n');

function usage(msg) {
	process.stderr.write(`dashboard.mjs: ${msg}\n` +
		'usage: node dashboard.mjs --spout-port P [--updates N] [--timeout MS] [--screenshot FILE]\n');
	process.exit(2);
}

const opts = { port: null, updates: 6, timeout: 30000, screenshot: null,
	chromium: process.env.CHROMIUM || '/usr/bin/chromium' };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
	const a = argv[i];
	const val = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`));
	const num = (s) => (/^[0-9]+$/.test(s) ? Number(s) : usage(`${a}: not a number: ${s}`));
	if (a === '--spout-port') opts.port = num(val());
	else if (a === '--updates') opts.updates = num(val());
	else if (a === '--timeout') opts.timeout = num(val());
	else if (a === '--screenshot') opts.screenshot = val();
	else usage(`unexpected argument ${a}`);
}
if (opts.port === null) usage('--spout-port is required');

let browser = null;
const hardStop = setTimeout(() => { out({ kind: 'done', reason: 'hard-timeout' }); process.exit(3); },
	opts.timeout + 10000);

async function main() {
	browser = await chromium.launch({
		executablePath: opts.chromium,
		headless: true,
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			'--disable-background-networking', '--disable-component-update', '--disable-sync'],
		timeout: 10000,
	});
	const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
	page.on('console', (m) => out({ kind: 'console', level: m.type(), text: m.text() }));
	page.on('pageerror', (e) => out({ kind: 'console', level: 'pageerror', text: String(e) }));
	await page.goto(`http://127.0.0.1:${opts.port}/dashboard`, { timeout: 10000 });
	const deadline = Date.now() + opts.timeout;
	let seen = 0, reason = 'timeout';
	while (Date.now() < deadline) {
		const d = await page.evaluate(() => {
			const s = window.spoutDash;
			return s && s.last ? { updates: s.updates, conns: s.last.conns,
				deliveries_per_s: s.last.deliveries_per_s, p99: s.last.latency_ms.p99 } : null;
		});
		if (d && d.updates > seen) {
			seen = d.updates;
			out({ kind: 'update', ...d });
		}
		if (seen >= opts.updates) {
			reason = 'updates';
			break;
		}
		await new Promise((r) => setTimeout(r, 200));
	}
	// What the page shows: its history, how many pixels each chart inked,
	// the tiles' text and the state line.
	const shown = await page.evaluate(() => {
		const inked = {};
		for (const cv of document.querySelectorAll('canvas')) {
			const px = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
			let n = 0;
			for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) n++;
			inked[cv.id] = n;
		}
		return { history: window.spoutDash.history, inked,
			tiles: [...document.querySelectorAll('.tile')].map((t) => t.innerText.replace(/\n/g, ' ')),
			state: document.getElementById('state').textContent, errors: window.spoutDash.errors };
	});
	if (opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true });
	out({ kind: 'done', reason, updates: seen, ...shown, screenshot: opts.screenshot });
	return reason === 'updates' ? 0 : 3;
}

let rc = 1;
try {
	rc = await main();
} catch (e) {
	out({ kind: 'error', text: String(e && e.stack || e) });
} finally {
	if (browser) await browser.close().catch(() => {});
	clearTimeout(hardStop);
}
process.exit(rc);
