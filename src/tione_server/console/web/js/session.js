// The signed-in keys (issue 11 item 2): in sessionStorage only, never in URLs, localStorage or cookies.
const KEY = 'tione-console-session';

/** The current session {secretId, secretKey, region, project, identity} or null. */
export function current() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || 'null');
  } catch {
    return null;
  }
}

export function save(session) {
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

/** Sign out: forget the keys. */
export function forget() {
  sessionStorage.removeItem(KEY);
}
