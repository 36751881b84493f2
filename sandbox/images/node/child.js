'use strict';
// Lambdasite node child: one fresh process per job. Reads its request from
// fd 3 (a header line, then the JSON body), runs the handler, writes the
// result JSON to fd 4 and exits. stdout/stderr are pipes framed by the runner.
const fs = require('fs');
const vm = require('vm');

const USER_FILE = 'handler.js';

// stdout/stderr are pipes to the runner: block on a full pipe instead of queueing
// in memory, so output is bounded by the runner's reading and never lost on exit
for (const stream of [process.stdout, process.stderr]) {
  if (stream._handle && typeof stream._handle.setBlocking === 'function') stream._handle.setBlocking(true);
}

function readAll(fd) {
  const chunks = [];
  const buf = Buffer.allocUnsafe(65536);
  for (;;) {
    let n;
    try {
      n = fs.readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      throw e;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks);
}

function userStack(err) {
  const stack = (err && err.stack) ? String(err.stack) : '';
  const lines = stack.split('\n');
  const keep = [];
  for (const line of lines) {
    if (/^\s+at /.test(line) && line.indexOf(USER_FILE) === -1) continue;
    keep.push(line);
  }
  return keep.join('\n');
}

let done = false;
let maxResult = 1 << 20;

function finish(payload) {
  if (done) return;
  done = true;
  let data = Buffer.from(payload, 'utf8');
  if (data.length > maxResult) {
    data = Buffer.from(JSON.stringify({ ok: false, error: {
      type: 'ResultTooLarge',
      message: `result is ${data.length} bytes, over the ${maxResult}-byte limit`,
      traceback: '' } }));
  }
  // the runner measures CPU and memory itself: nothing but the result travels on fd 4
  try {
    for (let off = 0; off < data.length;) off += fs.writeSync(4, data, off, data.length - off);
  } catch (e) { /* runner gone */ }
  try { fs.closeSync(4); } catch (e) { /* ignore */ }
  process.exit(0);
}

function fail(err) {
  const isErr = err instanceof Error || (err && typeof err === 'object' && 'stack' in err);
  finish(JSON.stringify({ ok: false, error: {
    type: isErr ? (err.name || 'Error') : 'Error',
    message: isErr ? String(err.message) : String(err),
    traceback: isErr ? userStack(err) : '' } }));
}

process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);
process.on('beforeExit', () => {
  // the event loop emptied while the handler's promise was still pending: it can never settle
  const e = new Error('the handler returned a promise that never settled (nothing else was pending)');
  e.name = 'UnsettledPromise';
  fail(e);
});

const raw = readAll(3);
fs.closeSync(3);
const nl = raw.indexOf(10);
const header = JSON.parse(raw.subarray(0, nl).toString('utf8'));
if (header.max_result_bytes) maxResult = header.max_result_bytes;
const req = JSON.parse(raw.subarray(nl + 1).toString('utf8'));

(async () => {
  let value;
  try {
    const handler = req.handler;
    if (!/^[A-Za-z_$][\w$]*$/.test(handler)) throw new Error(`invalid handler name ${handler}`);
    const wrapper = '(function (exports, require, module, __filename, __dirname) {' + req.code +
      `\n;return (typeof ${handler} !== 'undefined') ? ${handler} : undefined;\n})`;
    const fnWrap = vm.runInThisContext(wrapper, { filename: USER_FILE });
    const mod = { exports: {} };
    let fn = fnWrap.call(mod.exports, mod.exports, require, mod, '/tmp/' + USER_FILE, '/tmp');
    if (typeof fn !== 'function') {
      const ex = mod.exports;
      fn = (ex && typeof ex[handler] === 'function') ? ex[handler]
        : (typeof ex === 'function' ? ex : undefined);
    }
    if (typeof fn !== 'function') {
      const e = new Error(`handler '${handler}' is not defined as a function`);
      e.name = 'LookupError';
      throw e;
    }
    const args = req.args == null ? [] : req.args;
    value = Array.isArray(args) ? await fn(...args) : await fn(args);
  } catch (err) {
    fail(err);
    return;
  }
  let text;
  try {
    text = JSON.stringify({ ok: true, result: value === undefined ? null : value });
  } catch (err) {
    finish(JSON.stringify({ ok: false, error: {
      type: 'ResultNotSerializable',
      message: 'result is not JSON-serialisable: ' + String(err.message),
      traceback: '' } }));
    return;
  }
  finish(text);
})();
