// Every call the console makes: an ordinary TC3-signed API request to this origin (issue 11 item 2).
import {current} from './session.js';
import {signedHeaders} from './tc3.js';

/** An error reply of the API: its Code, Message and RequestId, shown to the user as the API said them. */
export class ApiError extends Error {
  constructor(code, message, requestId) {
    super(message);
    this.code = code;
    this.requestId = requestId;
  }

  toString() {
    return `${this.code}: ${this.message}`;
  }
}

/** The readable text of any failure: the API's code and message, or what went wrong on the way. */
export function describe(err) {
  if (err instanceof ApiError) return `${err.code}: ${err.message}`;
  return `Request failed: ${err && err.message ? err.message : err}`;
}

/**
 * Send one signed request; returns {request, status, text, json}: what was sent and what came back, unjudged
 * (the API Explorer shows both). `keys` defaults to the signed-in session.
 */
export async function send(action, params, keys = current()) {
  const body = JSON.stringify(params || {});
  const timestamp = Math.floor(Date.now() / 1000);
  const headers = await signedHeaders({
    secretId: keys.secretId, secretKey: keys.secretKey, action, region: keys.region, body,
    host: location.host, timestamp, language: 'en-US',
  });
  const resp = await fetch('/', {method: 'POST', headers, body, cache: 'no-store', credentials: 'omit'});
  const text = await resp.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return {request: {url: `${location.origin}/`, method: 'POST', headers, body}, status: resp.status, text, json};
}

/** Call an action and return its Response object; throws ApiError for an error reply. */
export async function call(action, params = {}, keys = current()) {
  const {status, text, json} = await send(action, params, keys);
  const r = json && json.Response;
  if (!r) throw new Error(`HTTP ${status}: ${text.slice(0, 200)}`);
  if (r.Error) throw new ApiError(r.Error.Code, r.Error.Message, r.RequestId);
  return r;
}

/** `{TiProjectId}` of the session's workspace, to spread into the parameters of workspace-scoped actions. */
export function project() {
  const s = current();
  return s && s.project ? {TiProjectId: s.project} : {};
}
