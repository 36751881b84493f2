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

async function run(fn, args, durable) {
  let value;
  try {
    if (initError !== null) throw initError;
    args = args == null ? [] : args;
    if (durable) args = [new Context(durable), ...(Array.isArray(args) ? args : [args])];
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

// -- durable runs ---------------------------------------------------------------
// A durable run's handler gets this context first. Every execution calls the handler from the top;
// the journal holds what earlier executions recorded, by position, and each position must ask for
// the step it asked for before. New outcomes go to the host on fd 5 (length-prefixed JSON) and the
// code goes on once the host has stored them; a wait with no outcome yet is recorded, then this
// process reports and exits (the run is suspended). Calls are awaited one at a time.
const CTL_FD = 5;
const NAME_MAX = 200;

function closeControl() {
  try { fs.closeSync(CTL_FD); } catch (e) { /* not given */ }
}

class StepFailed extends Error {
  constructor(step, error) {
    error = error || {};
    super(`step '${step}' failed: ${error.type}: ${error.message}`);
    this.name = 'StepFailed';
    this.step = step;
    this.error = error;
  }
}

class ChildFailed extends StepFailed {
  constructor(step, error, results, errors) {
    super(step, error);
    this.name = 'ChildFailed';
    this.results = results === undefined ? null : results;
    this.errors = errors === undefined ? null : errors;
  }
}

class EventTimeout extends StepFailed {
  constructor(step, error) {
    super(step, error);
    this.name = 'EventTimeout';
  }
}

function ctlRead(n) {
  const out = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    let k;
    try {
      k = fs.readSync(CTL_FD, out, got, n - got, null);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      throw e;
    }
    if (k === 0) throw new Error('the record channel closed');
    got += k;
  }
  return out;
}

function isNumber(v) { return typeof v === 'number' && Number.isFinite(v); }

function jsonChecked(value, what) {
  try {
    return JSON.parse(JSON.stringify(value));
  } catch (e) {
    throw new TypeError(`${what} must be JSON: ${e.message}`);
  }
}

class Context {
  constructor(durable) {
    this.runId = String(durable.run || '');
    this.run_id = this.runId;
    this._journal = new Map();
    for (const entry of durable.journal || []) this._journal.set(entry.seq, entry);
    this._seq = 0;
    this._names = new Set();
    this._current = null;
    this._attempt = null;
    this._busy = false;
    this.StepFailed = StepFailed;
    this.ChildFailed = ChildFailed;
    this.EventTimeout = EventTimeout;
  }

  // inside a step's function: "<run id>:<step name>", the same on every try and execution
  get stepId() { return this._current === null ? null : `${this.runId}:${this._current}`; }
  get step_id() { return this.stepId; }
  get attempt() { return this._attempt; }

  async step(name, fn, opts) {
    opts = opts || {};
    const retries = opts.retries === undefined ? 0 : opts.retries;
    const backoff = opts.backoffS === undefined ? (opts.backoff_s === undefined ? 1 : opts.backoff_s) : opts.backoffS;
    if (!isNumber(retries) || !isNumber(backoff)) throw new TypeError('retries and backoffS must be numbers');
    if (typeof fn !== 'function') throw new TypeError('ctx.step takes a name and a function');
    const [seq, entry] = this._position(name, 'step');
    try {
      let attempt = 1;
      if (entry) {
        if (entry.status === 'succeeded') return entry.result === undefined ? null : entry.result;
        if (entry.status === 'failed') throw new StepFailed(name, entry.error);
        attempt = (entry.attempts || 0) + 1;
      }
      const terms = { seq, name, kind: 'step', attempt, retries, backoff_s: backoff };
      this._current = name;
      this._attempt = attempt;
      const started = Date.now();
      let text;
      try {
        const value = await fn();
        text = JSON.stringify(value === undefined ? null : value);
        if (text === undefined) throw new TypeError(`step '${name}' returned something that is not JSON`);
      } catch (err) {
        this._current = this._attempt = null;
        const isErr = err instanceof Error || (err && typeof err === 'object' && 'stack' in err);
        const error = {
          type: isErr ? (err.name || 'Error') : 'Error',
          message: isErr ? String(err.message) : String(err),
          traceback: isErr ? userStack(err) : '' };
        Object.assign(terms, { ok: false, error, ms: Date.now() - started });
        if (this._send(JSON.stringify(terms)).suspend) this._suspend();
        throw new StepFailed(name, error);
      }
      this._current = this._attempt = null;
      Object.assign(terms, { ok: true, ms: Date.now() - started });
      this._send(JSON.stringify(terms).slice(0, -1) + ',"result":' + text + '}');
      return JSON.parse(text);
    } finally {
      this._current = this._attempt = null;
      this._busy = false;
    }
  }

  async sleep(name, seconds) {
    if (!isNumber(seconds)) throw new TypeError('seconds must be a number');
    return this._wait(name, 'sleep', { seconds });
  }

  async sleepUntil(name, when) {
    if (when instanceof Date) when = when.toISOString();
    if (typeof when !== 'string') throw new TypeError('sleepUntil takes an ISO 8601 string or a Date');
    return this._wait(name, 'sleep', { until: when });
  }

  async invoke(name, fn, args, opts) {
    const qualifier = (opts && opts.qualifier) || null;
    return this._wait(name, 'invoke', jsonChecked({ function: fn, args: args || [], qualifier }, 'args'));
  }

  async map(name, fn, items, opts) {
    const qualifier = (opts && opts.qualifier) || null;
    const calls = Array.from(items || [], (item) => (Array.isArray(item) ? item : [item]));
    return this._wait(name, 'map', jsonChecked({ function: fn, items: calls, qualifier }, 'items'));
  }

  async waitForEvent(name, event, key, timeoutS) {
    const terms = { event, key: key === undefined || key === null ? '' : key };
    if (timeoutS !== undefined && timeoutS !== null) {
      if (!isNumber(timeoutS)) throw new TypeError('timeoutS must be a number');
      terms.timeout_s = timeoutS;
    }
    return this._wait(name, 'event', jsonChecked(terms, 'the event'));
  }

  _position(name, kind) {
    if (this._busy) {
      throw new Error(`ctx.${kind}('${name}') while another ctx call is pending: await each call ` +
        '(steps do not nest or run concurrently; use ctx.map to fan out)');
    }
    if (typeof name !== 'string' || name.length === 0 || name.length > NAME_MAX) {
      throw new TypeError(`a step name is a non-empty string of at most ${NAME_MAX} characters`);
    }
    if (this._names.has(name)) {
      throw new TypeError(`the step name '${name}' is used twice: names are unique within a run`);
    }
    this._busy = true;
    this._names.add(name);
    this._seq += 1;
    const entry = this._journal.get(this._seq);
    if (entry && (entry.name !== name || entry.kind !== kind)) {
      this._fail('DeterminismError', `step ${this._seq} of this run is recorded as '${entry.name}' ` +
        `(${entry.kind}), but the code now asks for '${name}' (${kind}) at that position: a durable ` +
        'function must ask for the same steps in the same order every time it runs (branch only on ' +
        'arguments and on what steps return)');
    }
    return [this._seq, entry];
  }

  async _wait(name, kind, terms) {
    const [seq, found] = this._position(name, kind);
    try {
      let entry = found;
      if (!entry || entry.status === 'waiting') {
        const reply = this._send(JSON.stringify(Object.assign({}, terms, { seq, name, kind })));
        if (!('outcome' in reply)) this._suspend();
        entry = reply.outcome;
      }
      if (entry.status === 'succeeded') return entry.result === undefined ? null : entry.result;
      const error = entry.error || {};
      if (kind === 'invoke' || kind === 'map') throw new ChildFailed(name, error, entry.result, error.errors);
      if (kind === 'event') throw new EventTimeout(name, error);
      throw new StepFailed(name, error);
    } finally {
      this._busy = false;
    }
  }

  _send(text) {
    let reply;
    try {
      const data = Buffer.from(text, 'utf8');
      const head = Buffer.alloc(4);
      head.writeUInt32BE(data.length);
      const all = Buffer.concat([head, data]);
      for (let off = 0; off < all.length;) off += fs.writeSync(CTL_FD, all, off, all.length - off);
      const size = ctlRead(4).readUInt32BE(0);
      reply = JSON.parse(ctlRead(size).toString('utf8'));
    } catch (e) {
      this._fail('DurableChannelClosed', 'the run\'s record channel closed');
    }
    if (reply.fatal) this._fail(reply.fatal.type || 'DurableError', reply.fatal.message || '');
    if (reply.stop) this._fail('Superseded', 'this execution was superseded');
    return reply;
  }

  _suspend() {
    finish(JSON.stringify({ ok: true, result: null, suspended: true }));
    throw new Error('suspended');  // never reached: finish exits
  }

  _fail(type, message) {
    finish(JSON.stringify({ ok: false, error: { type, message, traceback: '' } }));
    throw new Error(type);  // never reached: finish exits
  }
}
Context.prototype.sleep_until = Context.prototype.sleepUntil;
Context.prototype.wait_for_event = Context.prototype.waitForEvent;

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
  let args = JSON.parse(readRest().toString('utf8'));
  fs.closeSync(3);
  let durable = null;
  if (header.durable) {
    durable = (args && typeof args.durable === 'object' && args.durable) || {};
    args = args ? args.args : [];
  } else {
    closeControl();
  }
  run(fn, args, durable);
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
  if (!req.durable) closeControl();
  run(fn, req.args, req.durable || null);
}
