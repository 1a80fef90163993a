// The console's shell: sign-in, navigation between pages (routes live in the URL's hash), sign-out.
import {call, describe} from './api.js';
import {fill, field, h, say} from './dom.js';
import {mountExplorer} from './explorer.js';
import {mountNewTask} from './newtask.js';
import {current, forget, save} from './session.js';
import {canSign} from './tc3.js';
import {mountTask} from './task.js';
import {mountTasks} from './tasks.js';

const app = document.getElementById('app');
const REGIONS = ['ap-guangzhou', 'ap-shanghai', 'ap-beijing', 'ap-nanjing', 'ap-chengdu', 'ap-chongqing',
  'ap-hongkong', 'ap-singapore', 'ap-tokyo', 'ap-seoul', 'ap-bangkok', 'ap-jakarta', 'na-siliconvalley',
  'ap-mumbai', 'na-ashburn', 'na-toronto', 'eu-frankfurt', 'sa-saopaulo', 'ap-shanghai-fsi', 'ap-shenzhen-fsi', 'ap-beijing-fsi'];
let cleanup = null;

/** `#/tasks?status=RUNNING` -> ['/tasks', URLSearchParams]. */
export function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/tasks';
  const [path, query = ''] = raw.split('?');
  return [path, new URLSearchParams(query)];
}

function signIn() {
  document.title = 'Sign in · tione-server console';
  const status = h('div', {role: 'alert', class: 'msg'});
  const id = field('SecretId', h('input', {name: 'secretId', autocomplete: 'username', required: true, spellcheck: 'false'}));
  const key = field('SecretKey', h('input', {name: 'secretKey', type: 'password', autocomplete: 'current-password', required: true}));
  const region = field('Region', h('select', {name: 'region', value: 'ap-guangzhou'},
    REGIONS.map((r) => h('option', {value: r}, r))));
  const proj = field('Project', h('input', {name: 'project', placeholder: 'default workspace', spellcheck: 'false'}),
    'TiProjectId; leave empty for the default workspace.');
  const button = h('button', {type: 'submit', class: 'primary'}, 'Sign in');
  const secure = canSign() ? null : h('p', {class: 'msg error', role: 'note'},
    'This page is not a secure context, so the browser offers no WebCrypto to sign requests with. Open the '
    + 'console over a loopback address (http://127.0.0.1:PORT/console/) or serve it over HTTPS with '
    + '`tione-server serve --tls-cert FILE --tls-key FILE`.');
  if (!canSign()) button.disabled = true;
  const form = h('form', {class: 'card signin', 'aria-labelledby': 'signin-title'},
    h('h1', {id: 'signin-title'}, 'Sign in'),
    h('p', {class: 'hint'}, 'Every call is a TC3-signed API request made in this browser. The keys are kept in '
      + 'this tab\'s session storage only, and forgotten on Sign out.'),
    secure, id.wrap, key.wrap, region.wrap, proj.wrap, button, status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    performance.clearMarks();
    performance.clearMeasures();
    performance.mark('signin');
    const keys = {secretId: id.input.value.trim(), secretKey: key.input.value, region: region.input.value,
      project: proj.input.value.trim()};
    button.disabled = true;
    say(status, 'Signing in…', 'info');
    try {
      const who = await call('DescribeCallerIdentity', {}, keys);
      save({...keys, identity: {uin: who.Uin, subUin: who.SubAccountUin}});
      if (!location.hash || location.hash === '#/signin') location.hash = '#/tasks';
      else route();
    } catch (err) {
      say(status, describe(err));
      button.disabled = false;
    }
  });
  fill(app, form);
  id.input.focus();
}

function chrome(session) {
  document.getElementById('nav').hidden = !session;
  document.getElementById('signout').hidden = !session;
  const who = document.getElementById('who');
  who.textContent = session
    ? `${session.identity.subUin === session.identity.uin ? session.identity.uin
      : `${session.identity.uin} / ${session.identity.subUin}`} · ${session.region}`
      + (session.project ? ` · project ${session.project}` : '')
    : '';
  const [path] = parseHash();
  for (const a of document.querySelectorAll('#nav a')) {
    const target = a.getAttribute('href').slice(1);
    if (path === target || (target === '/tasks' && path.startsWith('/tasks'))) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

/** Render the page the hash names. */
export function route() {
  if (cleanup) cleanup();
  cleanup = null;
  const session = current();
  chrome(session);
  if (!session) {
    signIn();
    return;
  }
  const [path, query] = parseHash();
  const detail = path.match(/^\/tasks\/([^/]+)$/);
  if (detail) cleanup = mountTask(app, decodeURIComponent(detail[1]));
  else if (path === '/new') cleanup = mountNewTask(app, query);
  else if (path === '/explorer') cleanup = mountExplorer(app, query);
  else cleanup = mountTasks(app);
  const heading = app.querySelector('h1');
  if (heading) heading.setAttribute('tabindex', '-1');
}

document.getElementById('signout').addEventListener('click', () => {
  forget();
  location.hash = '#/tasks';
  route();
});
window.addEventListener('hashchange', route);
route();
