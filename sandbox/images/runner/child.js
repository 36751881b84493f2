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

// fd 3 carries, in order: a header line, then (a function) the module's code of the
// header's code_bytes, a second header line and the arguments, or (a snippet) the body
// {code, handler, args} as JSON; the runner closes it after the last byte.
let pending = Buffer.alloc(0);
let eof = false;

function fill() {
  const buf = Buffer.allocUnsafe(65536);
  for (;;) {
    let n;
    try {
      n = fs.readSync(3, buf, 0, buf.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      throw e;
    }
    if (n === 0) eof = true;
    else pending = Buffer.concat([pending, buf.subarray(0, n)]);
    return;
  }
}

function readLine() {
  for (;;) {
    const nl = pending.indexOf(10);
    if (nl >= 0) {
      const line = pending.subarray(0, nl).toString('utf8');
      pending = pending.subarray(nl + 1);
      return line;
    }
    if (eof) throw new Error('request ended early');
    fill();
  }
}

function readBytes(n) {
  while (pending.length < n) {
    if (eof) throw new Error('request ended early');
    fill();
  }
  const out = pending.subarray(0, n);
  pending = pending.subarray(n);
  return out;
}

function readRest() {
  while (!eof) fill();
  const out = pending;
  pending = Buffer.alloc(0);
  return out;
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

function load(code, handler, requireFn) {
  if (!/^[A-Za-z_$][\w$]*$/.test(handler)) throw new Error(`invalid handler name ${handler}`);
  const wrapper = '(function (exports, require, module, __filename, __dirname) {' + code +
    `\n;return (typeof ${handler} !== 'undefined') ? ${handler} : undefined;\n})`;
  const fnWrap = vm.runInThisContext(wrapper, { filename: USER_FILE });
  const mod = { exports: {} };
  let fn = fnWrap.call(mod.exports, mod.exports, requireFn, mod, '/tmp/' + USER_FILE, '/tmp');
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
  return fn;
}

async function run(fn, args) {
  let value;
  try {
    if (initError !== null) throw initError;
    args = args == null ? [] : args;
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
}

// A snippet's configuration and secrets as variables (the runner wrote the secret files). A
// function's variables were given to this process when it started; the door's too (Node reads them
// at start).
function applyEnv(env) {
  for (const [name, value] of Object.entries(env || {})) process.env[name] = value;
}

let initError = null;
let header = JSON.parse(readLine());
if (header.function) {
  // a deployed function: load the module now, while no job waits; its dependencies
  // (a read-only layer at /opt/deps) resolve from /opt/deps/node_modules
  const fnHeader = header.function;
  const code = readBytes(fnHeader.code_bytes).toString('utf8');
  const requireFn = fnHeader.deps ? require('module').createRequire('/opt/deps/' + USER_FILE) : require;
  let fn;
  try {
    fn = load(code, fnHeader.handler, requireFn);
  } catch (err) {
    initError = err;
  }
  header = JSON.parse(readLine());
  if (header.max_result_bytes) maxResult = header.max_result_bytes;
  const args = JSON.parse(readRest().toString('utf8'));
  fs.closeSync(3);
  run(fn, args);
} else {
  if (header.max_result_bytes) maxResult = header.max_result_bytes;
  applyEnv(header.env);
  delete header.env;
  const req = JSON.parse(readRest().toString('utf8'));
  fs.closeSync(3);
  let fn;
  try {
    fn = load(req.code, req.handler, require);
  } catch (err) {
    initError = err;
  }
  run(fn, req.args);
}
