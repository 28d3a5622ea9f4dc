/**
 * Write a Sentinela monitor in JavaScript.
 *
 *     import { Issue, Monitor, exportMonitor } from './sentinela_monitor.js';
 *
 *     class DiskFull extends Monitor {
 *       search() { return [new Issue('disk-1', { used_percent: 97 })]; }
 *       isSolved(issue) { return issue.data.used_percent < 90; }
 *     }
 *
 *     export const checks = exportMonitor(DiskFull);
 *
 * Build it into a component with `guests/js/build.sh DIR -o OUT.wasm` (componentize-js),
 * which puts this file next to the app. Every call runs in a fresh instance: a monitor keeps
 * no state between calls; what `isSolved` needs must be in the issue's `data`.
 *
 * A method that throws returns the error's text to the host as the call's error, with where
 * it was thrown; the host logs it with the monitor's name. A failed host call throws
 * `HostError`.
 */
import { log as hostLog } from 'sentinela:plugin/log@0.1.0';
import * as awsCall from 'sentinela:plugin/aws-call@0.1.0';
import * as hostQueue from 'sentinela:plugin/queue@0.1.0';
import * as hostSecrets from 'sentinela:plugin/secrets@0.1.0';
import * as configStore from 'wasi:config/store@0.2.0-rc.1';

/** A problem the monitor tracks: `id` unique in the monitor and stable; `data` an object. */
export class Issue {
  constructor(id, data) {
    this.id = id;
    this.data = data;
  }
}

const KINDS = {
  denied: 'denied',
  'not-found': 'not found',
  invalid: 'invalid',
  aws: 'aws',
  limit: 'limit',
  unavailable: 'unavailable',
};

/** A host call failed: `kind` is denied, not found, invalid, aws, limit or unavailable;
 * `code` is the AWS error code. */
export class HostError extends Error {
  constructor(error) {
    const kind = KINDS[error.tag] ?? String(error.tag);
    const text =
      error.tag === 'aws'
        ? `${error.val.code} (HTTP ${error.val.status}): ${error.val.message}`
        : `${kind}: ${error.val}`;
    super(text);
    this.name = 'HostError';
    this.kind = kind;
    this.code = error.tag === 'aws' ? error.val.code : null;
    this.error = error;
  }
}

/** A setting is missing or does not parse; the message names the key. */
export class SettingError extends Error {
  constructor(message) {
    super(message);
    this.name = 'SettingError';
  }
}

function host(call, ...args) {
  try {
    return call(...args);
  } catch (e) {
    if (e && e.payload && e.payload.tag) throw new HostError(e.payload);
    throw e;
  }
}

/** Logging into the host's log, tagged with the monitor's name. `console.log` works too. */
export const log = {
  trace: (message) => hostLog('trace', String(message)),
  debug: (message) => hostLog('debug', String(message)),
  info: (message) => hostLog('info', String(message)),
  warn: (message) => hostLog('warn', String(message)),
  error: (message) => hostLog('error', String(message)),
};

/** Whether `message` (the JSON an SNS topic delivers to HTTP or SQS subscribers) is signed
 * by SNS; the host checks it with the certificate at its SigningCertURL. Needs no grant. */
export function verifySnsMessage(message) {
  return host(awsCall.verifySnsMessage, message);
}

/** AWS through the host, signed with a credential this monitor is granted, in the
 * credential's region unless `region` is given. The monitor never sees a key. */
export class Aws {
  constructor(credential, region = undefined) {
    this.credential = credential;
    this.region = region;
  }

  /** A JSON-protocol operation (sqs, dynamodb, ssm, logs, ...); the parsed answer. */
  json(service, operation, input = {}) {
    const output = host(
      awsCall.json,
      this.credential,
      service,
      this.region,
      operation,
      JSON.stringify(input),
    );
    return output ? JSON.parse(output) : null;
  }

  /** A query-protocol action (sts, sns, iam, cloudwatch, ...); the XML body. */
  query(service, action, params = {}) {
    return host(awsCall.query, this.credential, service, this.region, action, Object.entries(params));
  }

  /** A signed request to a REST service (s3, lambda): `{ status, headers, body }`. */
  signed(service, method, path, { query = [], headers = [], body = new Uint8Array() } = {}) {
    return host(awsCall.signed, this.credential, service, this.region, {
      method,
      path,
      query,
      headers,
      body,
    });
  }

  /** A presigned URL for a REST request with no body (an S3 GET or PUT of an object), valid
   * `expiresSeconds`; granted as `service:presign:Operation`. */
  presign(service, method, path, expiresSeconds, { query = [], headers = [] } = {}) {
    return host(
      awsCall.presign,
      this.credential,
      service,
      this.region,
      { method, path, query, headers, body: new Uint8Array() },
      expiresSeconds,
    );
  }

  /** Every page of a JSON-protocol list operation, one call per page: the first with
   * `input`, each next one with the last answer's `outputToken` set as `inputToken`, until an
   * answer has none. */
  *jsonPages(service, operation, input = {}, inputToken = "NextToken", outputToken = "NextToken") {
    const next = { ...input };
    const seen = new Set();
    for (;;) {
      const page = this.json(service, operation, next);
      yield page;
      const token = page?.[outputToken];
      if (!token || seen.has(token)) return;
      seen.add(token);
      next[inputToken] = token;
    }
  }

  /** Typed SQS helpers with this credential and region. */
  sqs() {
    return new Sqs(this);
  }
}

/** Typed SQS helpers. */
export class Sqs {
  constructor(aws) {
    this.aws = aws;
  }

  /** Queue URLs, optionally only those whose name starts with `prefix`. */
  listQueues(prefix = undefined) {
    const output = this.aws.json('sqs', 'ListQueues', prefix ? { QueueNamePrefix: prefix } : {});
    return (output && output.QueueUrls) || [];
  }

  /** The named attributes of a queue. */
  getQueueAttributes(queueUrl, names) {
    const output = this.aws.json('sqs', 'GetQueueAttributes', {
      QueueUrl: queueUrl,
      AttributeNames: names,
    });
    return (output && output.Attributes) || {};
  }

  /** `ApproximateNumberOfMessages` of a queue. */
  approximateNumberOfMessages(queueUrl) {
    const attributes = this.getQueueAttributes(queueUrl, ['ApproximateNumberOfMessages']);
    if (!('ApproximateNumberOfMessages' in attributes)) {
      throw new Error('no ApproximateNumberOfMessages in the answer');
    }
    return Number(attributes.ApproximateNumberOfMessages);
  }
}

/** Secrets declared for this monitor in its config (`secrets:`), fetched by the host. */
export const secrets = {
  get: (name) => host(hostSecrets.get, name),
};

/** Messages on the SQS queues of the config's `queues:` granted to this monitor. */
export const queue = {
  send: (queueName, body) => host(hostQueue.send, queueName, body),
  receive: (queueName, max = 1, waitSeconds = 0) =>
    host(hostQueue.receive, queueName, max, waitSeconds),
  delete: (queueName, message) => host(hostQueue.delete, queueName, message.receipt),
  changeVisibility: (queueName, message, seconds) =>
    host(hostQueue.changeVisibility, queueName, message.receipt, seconds),
};

function parseBool(text) {
  const lowered = text.trim().toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(lowered)) return true;
  if (['false', 'no', 'off', '0'].includes(lowered)) return false;
  throw new Error('expected true or false');
}

const PARSERS = {
  int: (text) => {
    if (!/^[+-]?\d+$/.test(text.trim())) throw new Error('expected an integer');
    return Number(text);
  },
  number: (text) => {
    const value = Number(text);
    if (text.trim() === '' || Number.isNaN(value)) throw new Error('expected a number');
    return value;
  },
  bool: parseBool,
  string: (text) => text,
};

/** The monitor's `settings:`, read through the standard `wasi:config/store` interface.
 * Values are strings: YAML scalars as written, lists and maps as JSON. */
export const settings = {
  /** The value, or `undefined` when the config does not set it. */
  get(key) {
    try {
      return configStore.get(key);
    } catch (e) {
      throw new SettingError(`setting '${key}': the host could not read it: ${e.payload?.val ?? e}`);
    }
  },
  /** The value; a SettingError naming the key when it is not set. */
  require(key) {
    const value = settings.get(key);
    if (value === undefined) {
      throw new SettingError(`setting '${key}' is not set (add it under the monitor's settings:)`);
    }
    return value;
  },
  /** The value parsed as `kind` ('int', 'number', 'bool', 'string' or a function of a
   * string); `fallback` when it is not set and a fallback is given. */
  parse(key, kind, fallback = undefined) {
    const value = settings.get(key);
    if (value === undefined) {
      if (fallback !== undefined) return fallback;
      return settings.require(key);
    }
    const convert = typeof kind === 'function' ? kind : PARSERS[kind];
    if (!convert) throw new SettingError(`setting '${key}': unknown kind ${kind}`);
    try {
      return convert(value);
    } catch (e) {
      const name = typeof kind === 'function' ? kind.name || 'value' : kind;
      throw new SettingError(`setting '${key}': ${JSON.stringify(value)} is not a valid ${name}: ${e.message}`);
    }
  },
  /** A YAML list or map from the config, which arrives as JSON. */
  json(key) {
    const value = settings.require(key);
    try {
      return JSON.parse(value);
    } catch (e) {
      throw new SettingError(`setting '${key}': ${JSON.stringify(value)} is not JSON: ${e.message}`);
    }
  },
  /** Every setting, as [key, value] pairs. */
  all() {
    try {
      return configStore.getAll();
    } catch (e) {
      throw new SettingError(`settings: the host could not read them: ${e.payload?.val ?? e}`);
    }
  },
};

/** A monitor: Sentinela's search / update / isSolved cycle. Override `search` and
 * `isSolved`; `update` (nothing changes) and `handle` (messages ignored) have defaults. */
export class Monitor {
  search() {
    throw new Error('search is not implemented');
  }
  update(issues) {
    return [];
  }
  isSolved(issue) {
    throw new Error('isSolved is not implemented');
  }
  handle(kind, payload) {}
}

// How many of an error's innermost frames reach the host, and how long their text may be.
const TRACE_FRAMES = 3;
const TRACE_CHARS = 600;

/** The error's innermost frames as `file:line in function`, without this SDK's own. */
function where(error) {
  const frames = String((error && error.stack) || '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.includes('sentinela_monitor.js') && !line.includes('initializer.js'))
    .map((line) => {
      const match = /^(.*)@(.*):(\d+):\d+$/.exec(line);
      if (!match) return null;
      const file = match[2].split('/').pop();
      return `${file}:${match[3]} in ${match[1] || '<module>'}`;
    })
    .filter(Boolean)
    .slice(0, TRACE_FRAMES);
  const text = frames.join(' <- ');
  return text.length <= TRACE_CHARS ? text : text.slice(0, TRACE_CHARS - 1) + '…';
}

/** Runs `call`; anything thrown becomes the export's error text, so the host logs it. */
function returningErrors(call) {
  try {
    return call();
  } catch (e) {
    const name = (e && e.name) || 'Error';
    const message = e && e.message !== undefined ? e.message : String(e);
    const at = where(e);
    throw `${name}: ${message}${at ? ` (at ${at})` : ''}`;
  }
}

function toWit(issues) {
  return issues.map((issue) => ({ id: String(issue.id), data: JSON.stringify(issue.data) }));
}

function fromWit(issue) {
  try {
    return new Issue(issue.id, JSON.parse(issue.data));
  } catch (e) {
    throw new Error(`issue '${issue.id}' has invalid data: ${e.message}`);
  }
}

/** The `checks` export componentize-js needs: `export const checks = exportMonitor(MyMonitor);` */
export function exportMonitor(MonitorClass) {
  return {
    search: () => returningErrors(() => toWit(new MonitorClass().search())),
    update: (issues) => returningErrors(() => toWit(new MonitorClass().update(issues.map(fromWit)))),
    isSolved: (issue) => returningErrors(() => Boolean(new MonitorClass().isSolved(fromWit(issue)))),
    handle: (kind, payload) =>
      returningErrors(() => {
        new MonitorClass().handle(kind, payload ? JSON.parse(payload) : null);
      }),
  };
}
