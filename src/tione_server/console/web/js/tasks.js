// The task list (issue 11 item 3): every DescribeTrainingTasks capability, the view's state in the URL, and
// nothing fetched beyond the page shown (one page of at most 50 rows plus one count per status).
import {call, describe, project} from './api.js';
import {fill, h, say, uid, when} from './dom.js';
import {current} from './session.js';

export const STATUSES = ['SUBMITTING', 'PENDING', 'STARTING', 'RUNNING', 'STOPPING', 'STOPPED', 'FAILED', 'SUCCEED'];
const PAGE = 50;
const REFRESH_MS = 5000;
const SORTS = [['CreateTime', 'Created'], ['StartTime', 'Started'], ['UpdateTime', 'Updated']];

/** The view's state from the URL (`#/tasks?q=bert&status=RUNNING,FAILED&not=1&sort=CreateTime&order=ASC&page=2`). */
function readState(query) {
  return {
    q: query.get('q') || '',
    status: (query.get('status') || '').split(',').filter((s) => STATUSES.includes(s)),
    not: query.get('not') === '1',
    mine: query.get('mine') === '1',
    creator: query.get('creator') || '',
    charge: query.get('charge') || '',
    group: query.get('group') || '',
    tagKey: query.get('tagKey') || '',
    tagValue: query.get('tagValue') || '',
    sort: SORTS.some(([f]) => f === query.get('sort')) ? query.get('sort') : 'UpdateTime',
    order: query.get('order') === 'ASC' ? 'ASC' : 'DESC',
    page: Math.max(1, parseInt(query.get('page') || '1', 10) || 1),
    refresh: query.get('refresh') !== '0',
  };
}

function writeState(state) {
  const q = new URLSearchParams();
  if (state.q) q.set('q', state.q);
  if (state.status.length) q.set('status', state.status.join(','));
  if (state.not) q.set('not', '1');
  if (state.mine) q.set('mine', '1');
  if (state.creator) q.set('creator', state.creator);
  if (state.charge) q.set('charge', state.charge);
  if (state.group) q.set('group', state.group);
  if (state.tagKey) q.set('tagKey', state.tagKey);
  if (state.tagValue) q.set('tagValue', state.tagValue);
  if (state.sort !== 'UpdateTime') q.set('sort', state.sort);
  if (state.order !== 'DESC') q.set('order', state.order);
  if (state.page > 1) q.set('page', String(state.page));
  if (!state.refresh) q.set('refresh', '0');
  const text = q.toString();
  history.replaceState(null, '', `#/tasks${text ? `?${text}` : ''}`);
}

/** The request's Filters and TagFilters; `withStatus` false leaves the status out (for the per-status counts). */
export function requestOf(state, withStatus = true) {
  const filters = [];
  if (state.q) filters.push({Name: 'Name', Values: [state.q], Fuzzy: true});
  if (withStatus && state.status.length) filters.push({Name: 'Status', Values: state.status, Negative: state.not});
  const creator = state.mine ? current().identity.subUin : state.creator;
  if (creator) filters.push({Name: 'Creator', Values: [creator]});
  if (state.charge) filters.push({Name: 'ChargeType', Values: [state.charge]});
  if (state.group) filters.push({Name: 'ResourceGroupId', Values: [state.group]});
  const req = {...project()};
  if (filters.length) req.Filters = filters;
  if (state.tagKey) req.TagFilters = [{TagKey: state.tagKey, TagValues: state.tagValue ? [state.tagValue] : []}];
  return req;
}

export function mountTasks(root) {
  const state = readState(new URLSearchParams(location.hash.split('?')[1] || ''));
  document.title = 'Tasks · tione-server console';
  let timer = null;
  let generation = 0;
  let firstRender = true;

  const status = h('div', {role: 'alert', class: 'msg'});
  const total = h('p', {class: 'total', 'aria-live': 'polite'});
  const counts = h('ul', {class: 'counts', 'aria-label': 'Tasks per status'});
  const body = h('tbody');
  const pageInfo = h('span', {class: 'page'});
  const prev = h('button', {type: 'button', onclick: () => go(state.page - 1)}, 'Previous');
  const next = h('button', {type: 'button', onclick: () => go(state.page + 1)}, 'Next');

  const search = h('input', {type: 'search', value: state.q, 'aria-label': 'Search by name', placeholder: 'Search by name'});
  let debounce = null;
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => change({q: search.value.trim()}), 300);
  });
  const statusBoxes = STATUSES.map((s) => {
    const id = uid('st');
    const box = h('input', {type: 'checkbox', id, value: s, checked: state.status.includes(s)});
    box.addEventListener('change', () => change({status: STATUSES.filter((x) => root.querySelector(`input[value="${x}"]`).checked)}));
    return h('span', {class: 'check'}, box, h('label', {for: id}, s));
  });
  const notId = uid('not');
  const notBox = h('input', {type: 'checkbox', id: notId, checked: state.not, onchange: (e) => change({not: e.target.checked})});
  const mineSel = h('select', {'aria-label': 'Mine / Everyone', value: state.mine ? 'mine' : 'all',
    onchange: (e) => change({mine: e.target.value === 'mine'})},
  h('option', {value: 'all'}, 'Everyone'), h('option', {value: 'mine'}, 'Mine'));
  const text = (label, key) => h('input', {'aria-label': label, placeholder: label, value: state[key], size: 14,
    onchange: (e) => change({[key]: e.target.value.trim()})});
  const chargeSel = h('select', {'aria-label': 'Charge type', value: state.charge, onchange: (e) => change({charge: e.target.value})},
    h('option', {value: ''}, 'Any charge type'), h('option', {value: 'POSTPAID_BY_HOUR'}, 'POSTPAID_BY_HOUR'),
    h('option', {value: 'PREPAID'}, 'PREPAID'));
  const refreshId = uid('refresh');
  const refreshBox = h('input', {type: 'checkbox', id: refreshId, checked: state.refresh,
    onchange: (e) => { state.refresh = e.target.checked; writeState(state); schedule(); }});

  const sortHeader = ([fieldName, label]) => {
    const active = state.sort === fieldName;
    const arrow = active ? (state.order === 'ASC' ? '▲' : '▼') : '';
    return h('th', {scope: 'col', 'aria-sort': active ? (state.order === 'ASC' ? 'ascending' : 'descending') : 'none'},
      h('button', {type: 'button', class: 'sort', onclick: () => change({sort: fieldName,
        order: active && state.order === 'DESC' ? 'ASC' : 'DESC'})}, label, h('span', {'aria-hidden': 'true'}, arrow)));
  };
  const head = h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Name'), h('th', {scope: 'col'}, 'Id'),
    h('th', {scope: 'col'}, 'Status'), SORTS.map(sortHeader), h('th', {scope: 'col'}, 'Charge type'),
    h('th', {scope: 'col'}, 'Creator')));

  fill(root,
    h('h1', {}, 'Training tasks'),
    h('form', {class: 'filters', role: 'search', onsubmit: (e) => e.preventDefault()},
      search, mineSel, chargeSel, text('Creator', 'creator'), text('Resource group', 'group'),
      text('Tag key', 'tagKey'), text('Tag value', 'tagValue'),
      h('fieldset', {class: 'statuses'}, h('legend', {}, 'Status'), statusBoxes,
        h('span', {class: 'check'}, notBox, h('label', {for: notId}, 'not (exclude these)')))),
    counts,
    h('div', {class: 'listbar'}, total, h('span', {class: 'check'}, refreshBox, h('label', {for: refreshId}, 'Auto-refresh'))),
    status,
    h('div', {class: 'scroll'}, h('table', {class: 'tasks'}, h('caption', {class: 'sr-only'}, 'Training tasks'), head, body)),
    h('nav', {class: 'pager', 'aria-label': 'Pages'}, prev, pageInfo, next));
  mineSel.value = state.mine ? 'mine' : 'all';
  chargeSel.value = state.charge;

  function change(patch) {
    Object.assign(state, patch, 'page' in patch ? {} : {page: 1});
    writeState(state);
    if ('sort' in patch) {
      for (const th of head.querySelectorAll('th[aria-sort]')) th.remove();
      const row = head.querySelector('tr');
      const chargeTh = row.children[3];
      for (const s of SORTS) row.insertBefore(sortHeader(s), chargeTh);
      head.querySelector(`th[aria-sort="${state.order === 'ASC' ? 'ascending' : 'descending'}"] button`).focus();
    }
    load();
  }

  function go(page) {
    change({page});
  }

  function schedule() {
    clearTimeout(timer);
    if (state.refresh) timer = setTimeout(load, REFRESH_MS);
  }

  async function loadCounts(mine) {
    const base = requestOf(state, false);
    const answers = await Promise.allSettled(STATUSES.map((s) => call('DescribeTrainingTasks', {...base, Limit: 1,
      Filters: [...(base.Filters || []), {Name: 'Status', Values: [s]}]})));
    if (mine !== generation) return;
    fill(counts, STATUSES.map((s, i) => {
      const a = answers[i];
      const n = a.status === 'fulfilled' ? a.value.TotalCount : '?';
      return h('li', {class: `count st-${s.toLowerCase()}`}, h('span', {class: 'n'}, String(n)), ' ', s);
    }));
  }

  async function load() {
    generation += 1;
    const mine = generation;
    clearTimeout(timer);
    const req = {...requestOf(state), Limit: PAGE, Offset: (state.page - 1) * PAGE, OrderField: state.sort, Order: state.order};
    loadCounts(mine);
    try {
      const r = await call('DescribeTrainingTasks', req);
      if (mine !== generation) return;
      say(status, '');
      render(r);
    } catch (err) {
      if (mine !== generation) return;
      say(status, describe(err));
    }
    schedule();
  }

  function render(r) {
    const pages = Math.max(1, Math.ceil(r.TotalCount / PAGE));
    total.textContent = `${r.TotalCount} ${r.TotalCount === 1 ? 'task' : 'tasks'}`;
    pageInfo.textContent = `Page ${state.page} of ${pages}`;
    prev.disabled = state.page <= 1;
    next.disabled = state.page >= pages;
    const rows = (r.TrainingTaskSet || []).map((t) => h('tr', {},
      h('td', {}, h('a', {href: `#/tasks/${encodeURIComponent(t.Id)}`}, t.Name || t.Id)),
      h('td', {class: 'mono'}, t.Id),
      h('td', {}, h('span', {class: `badge st-${(t.Status || '').toLowerCase()}`}, t.Status)),
      h('td', {}, when(t.CreateTime)), h('td', {}, when(t.StartTime)), h('td', {}, when(t.UpdateTime)),
      h('td', {}, t.ChargeType), h('td', {class: 'mono'}, t.SubUin)));
    if (!rows.length) rows.push(h('tr', {}, h('td', {colspan: 8, class: 'empty'}, 'No tasks match.')));
    fill(body, rows);
    if (firstRender) {
      firstRender = false;
      // Issue 11 "Must show": time from sign-in to the first rendered page, read by the browser tests.
      if (performance.getEntriesByName('signin').length && !performance.getEntriesByName('list-rendered').length) {
        performance.mark('list-rendered');
        performance.measure('signin-to-list', 'signin', 'list-rendered');
      }
    }
  }

  load();
  return () => {
    generation += 1;
    clearTimeout(timer);
    clearTimeout(debounce);
  };
}
