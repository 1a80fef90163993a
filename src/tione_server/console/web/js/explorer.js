// The API Explorer (issue 11 item 6): any action this server implements, parameters as JSON pre-filled with an
// example, sent signed; the request and the response shown; the same call as tccli and as Python SDK code.
import {describe, send} from './api.js';
import {fill, h, say, uid} from './dom.js';
import {current} from './session.js';

let catalogue = null;

async function actions() {
  if (!catalogue) {
    const r = await fetch('actions.json', {cache: 'no-cache'});
    catalogue = (await r.json()).Actions;
  }
  return catalogue;
}

function shellQuote(text) {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** The same call as a tccli command line (spec actions only: tccli knows nothing of this server's extensions). */
export function tccliLine(action, params, s) {
  const head = `tccli tione ${action} --endpoint ${location.origin} --region ${s.region} --secretId ${s.secretId} `
    + '--secretKey "$TENCENTCLOUD_SECRET_KEY"';
  const args = Object.entries(params).map(([k, v]) => ` \\\n    --${k} ${shellQuote(typeof v === 'string' ? v : JSON.stringify(v))}`);
  return head + args.join('');
}

/** The same call as Python SDK code (tencentcloud-sdk-python); CommonClient for an extension action. */
export function pythonCode(action, params, s, extension) {
  const json = JSON.stringify(params);
  const lines = [
    'import os',
    '',
    'from tencentcloud.common import credential',
    'from tencentcloud.common.profile.client_profile import ClientProfile',
    'from tencentcloud.common.profile.http_profile import HttpProfile',
  ];
  lines.push(extension ? 'from tencentcloud.common.common_client import CommonClient'
    : 'from tencentcloud.tione.v20211111 import models, tione_client');
  lines.push('', `cred = credential.Credential(${JSON.stringify(s.secretId)}, os.environ["TENCENTCLOUD_SECRET_KEY"])`,
    `profile = ClientProfile(httpProfile=HttpProfile(endpoint=${JSON.stringify(location.host)}, protocol=${JSON.stringify(location.protocol.replace(':', ''))}))`);
  if (extension) {
    lines.push(`client = CommonClient("tione", "2021-11-11", cred, ${JSON.stringify(s.region)}, profile)`,
      `print(client.call_json(${JSON.stringify(action)}, ${pyLiteral(json)}))`);
  } else {
    lines.push(`client = tione_client.TioneClient(cred, ${JSON.stringify(s.region)}, profile)`,
      `req = models.${action}Request()`, `req.from_json_string(${pyLiteral(json)})`,
      `print(client.${action}(req).to_json_string())`);
  }
  return lines.join('\n');
}

function pyLiteral(json) {
  return `'${json.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function mountExplorer(root, query) {
  document.title = 'API Explorer · tione-server console';
  const session = current();
  const actionSel = h('select', {id: uid('action')});
  const params = h('textarea', {id: uid('params'), rows: 14, spellcheck: 'false', class: 'mono'});
  const sendBtn = h('button', {type: 'submit', class: 'primary'}, 'Send');
  const status = h('div', {role: 'alert', class: 'msg'});
  const sent = h('pre', {class: 'json', 'aria-label': 'Request sent'});
  const response = h('pre', {class: 'json'});
  const tccli = h('pre', {class: 'code'});
  const python = h('pre', {class: 'code'});
  const copy = (label, pre) => h('button', {type: 'button', onclick: async () => {
    try {
      await navigator.clipboard.writeText(pre.textContent);
      say(status, `${label} copied.`, 'ok');
    } catch {
      say(status, `Select the ${label} text and copy it.`, 'info');
    }
  }}, `Copy ${label}`);
  let list = [];

  function entry() {
    return list.find((a) => a.Name === actionSel.value);
  }

  function parsed() {
    try {
      const p = JSON.parse(params.value || '{}');
      return p && typeof p === 'object' && !Array.isArray(p) ? p : null;
    } catch {
      return null;
    }
  }

  function renderCode() {
    const p = parsed();
    const e = entry();
    if (!p || !e) return;
    tccli.textContent = e.Extension ? '# tccli knows only the actions of TI-ONE\'s spec, not this server\'s extensions: use the SDK code.'
      : tccliLine(e.Name, p, session);
    python.textContent = pythonCode(e.Name, p, session, e.Extension);
  }

  function pick() {
    const e = entry();
    if (!e) return;
    history.replaceState(null, '', `#/explorer?action=${encodeURIComponent(e.Name)}`);
    params.value = JSON.stringify(e.Example, null, 2);
    renderCode();
  }
  actionSel.addEventListener('change', pick);
  params.addEventListener('input', renderCode);

  const form = h('form', {class: 'card'},
    h('div', {class: 'field'}, h('label', {for: actionSel.id}, 'Action'), actionSel),
    h('div', {class: 'field'}, h('label', {for: params.id}, 'Parameters'), params),
    sendBtn, status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const p = parsed();
    if (!p) {
      say(status, 'Parameters must be a JSON object.');
      params.focus();
      return;
    }
    sendBtn.disabled = true;
    say(status, 'Sending…', 'info');
    try {
      const r = await send(actionSel.value, p);
      const shown = {...r.request.headers, Authorization: r.request.headers.Authorization.replace(/Signature=\w+/, 'Signature=…')};
      sent.textContent = `${r.request.method} ${r.request.url}\n${Object.entries(shown).map(([k, v]) => `${k}: ${v}`).join('\n')}\n\n${JSON.stringify(p, null, 2)}`;
      response.textContent = r.json ? JSON.stringify(r.json, null, 2) : r.text;
      const err = r.json && r.json.Response && r.json.Response.Error;
      say(status, err ? `${err.Code}: ${err.Message}` : `HTTP ${r.status}: OK`, err ? 'error' : 'ok');
    } catch (err) {
      say(status, describe(err));
    } finally {
      sendBtn.disabled = false;
    }
  });
  fill(root, h('h1', {}, 'API Explorer'),
    h('p', {class: 'hint'}, 'Pick an action, edit its parameters, send it signed with your keys. Actions marked '
      + '“extension” are this server\'s own, not TI-ONE 2021-11-11\'s (see docs/actions.md).'),
    h('div', {class: 'grid'}, form,
      h('div', {},
        h('section', {'aria-label': 'Response', class: 'card'}, h('h2', {}, 'Response'), response),
        h('section', {'aria-label': 'Request', class: 'card'}, h('h2', {}, 'Request sent'), sent))),
    h('div', {class: 'grid'},
      h('section', {'aria-label': 'tccli', class: 'card'}, h('h2', {}, 'tccli'), copy('tccli command', tccli), tccli),
      h('section', {'aria-label': 'Python SDK', class: 'card'}, h('h2', {}, 'Python SDK'), copy('Python code', python), python)));

  actions().then((all) => {
    list = all;
    fill(actionSel, all.map((a) => h('option', {value: a.Name}, a.Extension ? `${a.Name} (extension)` : a.Name)));
    const want = query.get('action');
    actionSel.value = all.some((a) => a.Name === want) ? want : 'DescribeTrainingTasks';
    pick();
  }).catch((err) => say(status, describe(err)));
  return () => {};
}
