#!/usr/bin/env node
// Publish events to spout over its TCP line protocol, with node:net only.
//
//   node publish.mjs TOPIC DATA...            each DATA is one event, pipelined
//   tail -F app.log | node publish.mjs logs   no DATA: one event per stdin line
//   node publish.mjs --type alert news "$(printf 'line one\nline two')"
//
// Environment: SPOUT_PUB (HOST:PORT of the publisher listener, default
// 127.0.0.1:7400) and SPOUT_PUB_TOKEN (sent as AUTH <token> when set).
// Prints the broker's reply per event, "OK <id>" or "ERR <reason>", and exits
// 1 if any event was refused, 2 if AUTH was.
//
// Delivery is at least once: a command whose reply was lost with its
// connection is sent again on the next one, so it may be published twice.
import net from 'node:net';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const [HOST, PORT] = (() => {
	const addr = process.env.SPOUT_PUB || '127.0.0.1:7400';
	const i = addr.lastIndexOf(':');
	return [addr.slice(0, i).replace(/^\[|\]$/g, '') || '127.0.0.1', Number(addr.slice(i + 1))];
})();
const TOKEN = process.env.SPOUT_PUB_TOKEN || null;
const REPLY_TIMEOUT_MS = 10000;
const MAX_BACKOFF_MS = 10000;

// The broker answered ERR <reason>: the command was not published.
export class SpoutError extends Error {
	constructor(reason) {
		super(reason);
		this.name = 'SpoutError';
		this.reason = reason;
	}
}

// AUTH was refused: retrying with the same token cannot help.
export class AuthError extends SpoutError {
	constructor(reason) {
		super(reason);
		this.name = 'AuthError';
	}
}

// Lines the broker sends on its own just before it closes the connection.
// They answer no command: the command they seem to answer was not executed.
const CLOSING = ['idle timeout', 'too many publisher connections', 'auth required: no AUTH in time'];

// Text without line breaks (or CR, NUL) and without a type goes as PUB;
// anything else as EVENT, whose payload is length-framed and may hold any bytes.
export function command(topic, data, type = null) {
	for (const [name, v] of [['topic', topic], ['event type', type ?? '-']]) {
		if (!v || /[ \r\n\0]/.test(v)) throw new TypeError(`${name} ${JSON.stringify(v)}: must be non-empty, without spaces or line breaks`);
	}
	const payload = Buffer.from(data);   // a string (sent as UTF-8) or bytes
	if (type === null && ![0x0d, 0x0a, 0x00].some((b) => payload.includes(b)))
		return Buffer.concat([Buffer.from(`PUB ${topic} `), payload, Buffer.from('\n')]);
	return Buffer.concat([Buffer.from(`EVENT ${topic} ${type ?? '-'} ${payload.length}\n`), payload, Buffer.from('\n')]);
}

export class Publisher {
	#queue = [];        // {cmd, resolve, reject} in send order, until answered
	#sent = 0;          // how many of #queue went out on the current connection
	#sock = null;
	#ready = false;     // connected (and authenticated)
	#buf = '';
	#failures = 0;
	#timer = null;
	#closed = false;
	#fatal = null;

	// Resolves to the event id, as a string (the lastEventId subscribers see);
	// rejects with SpoutError on ERR. Calls made without awaiting are
	// pipelined: all go out at once, replies come back in order.
	publish(topic, data, type = null) {
		if (this.#fatal) return Promise.reject(this.#fatal);
		const cmd = command(topic, data, type);
		return new Promise((resolve, reject) => {
			this.#queue.push({ cmd, resolve, reject });
			if (this.#ready) this.#send();
			else this.#connect();
		});
	}

	close() {
		this.#closed = true;
		clearTimeout(this.#timer);
		if (this.#sock) this.#sock.end('QUIT\n');
	}

	#send() {
		while (this.#sent < this.#queue.length) this.#sock.write(this.#queue[this.#sent++].cmd);
	}

	#connect() {
		if (this.#sock || this.#timer || this.#closed) return;
		const sock = net.createConnection({ host: HOST, port: PORT, noDelay: true });
		this.#sock = sock;
		let authPending = false;
		let lastError = null;
		sock.setEncoding('utf8');
		sock.setTimeout(REPLY_TIMEOUT_MS);
		sock.on('connect', () => {
			if (TOKEN) {
				authPending = true;
				sock.write(`AUTH ${TOKEN}\n`);
			} else this.#onReady();
		});
		sock.on('timeout', () => {     // idle: fine unless a reply is overdue
			if (authPending || this.#sent > 0) sock.destroy(new Error('no reply from the broker'));
		});
		sock.on('data', (chunk) => {
			this.#buf += chunk;
			let i;
			while ((i = this.#buf.indexOf('\n')) >= 0) {
				const line = this.#buf.slice(0, i);
				this.#buf = this.#buf.slice(i + 1);
				if (line.startsWith('ERR ') && CLOSING.some((c) => line.slice(4).startsWith(c))) {
					sock.destroy(new Error(`broker closed the connection: ${line}`));
					return;
				}
				if (authPending) {
					authPending = false;
					if (line === 'OK') this.#onReady();
					else this.#fail(new AuthError(line.replace(/^ERR /, '')));
				} else if (this.#sent > 0) {
					this.#sent--;
					const { resolve, reject } = this.#queue.shift();
					if (line.startsWith('OK ')) resolve(line.slice(3));
					else reject(new SpoutError(line.replace(/^ERR /, '')));
				}
			}
		});
		sock.on('error', (err) => { lastError = err; });   // 'close' follows
		sock.on('close', () => {
			this.#sock = null;
			this.#ready = false;
			this.#sent = 0;      // unanswered commands are sent again
			this.#buf = '';
			if (this.#closed || this.#fatal) return;
			if (this.#queue.length === 0) return;   // reconnect when there is something to send
			this.#failures++;
			const delay = Math.min(MAX_BACKOFF_MS, 100 * 2 ** this.#failures) * (0.5 + Math.random() / 2);
			console.error(`publish: ${lastError?.message ?? 'connection closed'}; ` +
				`${this.#queue.length} command(s) unanswered, retrying in ${(delay / 1000).toFixed(1)}s`);
			this.#timer = setTimeout(() => { this.#timer = null; this.#connect(); }, delay);
		});
	}

	#onReady() {
		console.error(`publish: connected to ${HOST}:${PORT}${TOKEN ? ' (authenticated)' : ''}`);
		this.#ready = true;
		this.#failures = 0;
		this.#send();
	}

	#fail(err) {
		this.#fatal = err;
		for (const { reject } of this.#queue.splice(0)) reject(err);
		this.#sock.destroy();
	}
}

async function main() {
	const { values, positionals } = parseArgs({
		options: { type: { type: 'string' } }, allowPositionals: true,
	});
	const [topic, ...data] = positionals;
	if (!topic) {
		console.error('usage: node publish.mjs [--type TYPE] TOPIC [DATA...]');
		process.exit(2);
	}
	const pub = new Publisher();
	const type = values.type ?? null;
	let refused = 0;
	const report = async (pending) => {
		try {
			console.log(`OK ${await pending}`);
		} catch (err) {
			if (!(err instanceof SpoutError) || err instanceof AuthError) throw err;
			refused++;
			console.log(`ERR ${err.reason}`);
		}
	};
	try {
		if (data.length > 0) {
			const pending = data.map((d) => pub.publish(topic, d, type));   // pipelined
			for (const p of pending) await report(p);
		} else {
			for await (const line of readline.createInterface({ input: process.stdin })) {
				await report(pub.publish(topic, line, type));
			}
		}
	} catch (err) {
		console.error(`publish: ${err instanceof AuthError ? 'AUTH refused: ' : ''}${err.message}`);
		process.exit(2);
	} finally {
		pub.close();
	}
	process.exitCode = refused ? 1 : 0;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) main();
