// TC3-HMAC-SHA256 in the browser with WebCrypto (api3-protocol §3): the same signature the official SDKs send.
const enc = new TextEncoder();
export const SERVICE = 'tione';
export const VERSION = '2021-11-11';

function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function sha256(text) {
  return hex(await crypto.subtle.digest('SHA-256', enc.encode(text)));
}

async function hmac(key, text) {
  const raw = typeof key === 'string' ? enc.encode(key) : key;
  const k = await crypto.subtle.importKey('raw', raw, {name: 'HMAC', hash: 'SHA-256'}, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', k, enc.encode(text)));
}

/** Whether this page can sign at all: WebCrypto exists only in a secure context (https or loopback). */
export function canSign() {
  return Boolean(window.isSecureContext && window.crypto && crypto.subtle);
}

/**
 * The headers of a signed POST of `body` (JSON text) for `action`: Authorization over content-type and host.
 * `host` is what the browser will send as Host (location.host).
 */
export async function signedHeaders({secretId, secretKey, action, region, body, host, timestamp, language}) {
  const date = new Date(timestamp * 1000).toISOString().slice(0, 10);
  const contentType = 'application/json';
  const canonical = ['POST', '/', '', `content-type:${contentType}\nhost:${host}\n`, 'content-type;host',
    await sha256(body)].join('\n');
  const scope = `${date}/${SERVICE}/tc3_request`;
  const toSign = `TC3-HMAC-SHA256\n${timestamp}\n${scope}\n${await sha256(canonical)}`;
  const kDate = await hmac(`TC3${secretKey}`, date);
  const kService = await hmac(kDate, SERVICE);
  const kSigning = await hmac(kService, 'tc3_request');
  const signature = hex(await hmac(kSigning, toSign));
  const headers = {
    'Authorization': `TC3-HMAC-SHA256 Credential=${secretId}/${scope}, SignedHeaders=content-type;host, `
      + `Signature=${signature}`,
    'Content-Type': contentType,
    'X-TC-Action': action,
    'X-TC-Version': VERSION,
    'X-TC-Timestamp': String(timestamp),
    'X-TC-Region': region,
  };
  if (language) headers['X-TC-Language'] = language;
  return headers;
}
