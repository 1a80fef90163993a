// The task detail page (issue 11 item 4): every field, pods, runs as a timeline, live logs, metrics, pod usage,
// and Stop / Start / Delete (confirmed) / Clone.
import {call, describe, project} from './api.js';
import {lineChart} from './chart.js';
import {fill, h, say, uid, when} from './dom.js';
import {readLines} from './logs.js';
import {LogView} from './logview.js';

const ACTIVE = ['SUBMITTING', 'PENDING', 'STARTING', 'RUNNING', 'STOPPING'];
const REFRESH_MS = 2000;

function value(v) {
  if (v === null || v === undefined || v === '') return h('span', {class: 'none'}, '—');
  if (typeof v === 'object') return h('pre', {class: 'json'}, JSON.stringify(v, null, 2));
  return String(v);
}

/** A modal confirmation; resolves true when confirmed. */
function confirmDialog(text, yes) {
  return new Promise((resolve) => {
    const ok = h('button', {type: 'button', class: 'danger'}, yes);
    const cancel = h('button', {type: 'button'}, 'Cancel');
    const id = uid('dlg');
    const dialog = h('dialog', {'aria-labelledby': id}, h('p', {id}, text), h('div', {class: 'buttons'}, cancel, ok));
    const done = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    ok.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    dialog.addEventListener('cancel', () => done(false));
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

export function mountTask(root, taskId) {
  let alive = true;
  let timer = null;
  let task = null;
  const status = h('div', {role: 'alert', class: 'msg'});
  const heading = h('h1', {}, taskId);
  const badge = h('span', {class: 'badge'});
  const fields = h('dl', {class: 'fields'});
  const podsBody = h('tbody');
  const timeline = h('ol', {class: 'timeline'});
  const metrics = h('div', {class: 'chartbox'});
  const usage = h('div', {class: 'usage'});

  const act = (label, action, confirmText) => h('button', {type: 'button', onclick: async () => {
    if (confirmText && !(await confirmDialog(confirmText, `Yes, ${label.toLowerCase()}`))) return;
    say(status, `${label}…`, 'info');
    try {
      await call(action, {Id: taskId, ...project()});
      if (action === 'DeleteTrainingTask') {
        location.hash = '#/tasks';
        return;
      }
      say(status, `${label}: done.`, 'ok');
      refresh();
    } catch (err) {
      say(status, describe(err));
    }
  }}, label);
  const stopBtn = act('Stop', 'StopTrainingTask', `Stop task ${taskId}? Its pods get SIGTERM, then SIGKILL.`);
  const startBtn = act('Start', 'StartTrainingTask', `Start task ${taskId} again as a new run?`);
  const deleteBtn = act('Delete', 'DeleteTrainingTask', `Delete task ${taskId} with its runs, logs and metrics? This cannot be undone.`);
  const cloneBtn = h('button', {type: 'button', onclick: () => { location.hash = `#/new?clone=${encodeURIComponent(taskId)}`; }}, 'Clone');

  // -- logs -------------------------------------------------------------------------------------
  const view = new LogView();
  const runSel = h('select', {id: uid('run')});
  const podSel = h('select', {id: uid('pod')});
  const logSearch = h('input', {type: 'search', id: uid('ls'), placeholder: 'Search logs'});
  const pause = h('button', {type: 'button', 'aria-pressed': 'false'}, 'Pause');
  const download = h('button', {type: 'button'}, 'Download');
  const logStatus = h('div', {role: 'status', class: 'msg'});
  let runs = [];
  let follow = {run: '', pod: '', seen: new Set(), cursor: '', paused: false, busy: false, token: 0};

  logSearch.addEventListener('input', () => view.search(logSearch.value));
  pause.addEventListener('click', () => {
    follow.paused = !follow.paused;
    pause.textContent = follow.paused ? 'Follow' : 'Pause';
    pause.setAttribute('aria-pressed', String(follow.paused));
    if (!follow.paused) pollLogs();
  });
  const restart = () => {
    follow = {...follow, run: runSel.value, pod: podSel.value, seen: new Set(), cursor: '', token: follow.token + 1, busy: false};
    view.clear();
    view.follow = true;
    pollLogs();
  };
  runSel.addEventListener('change', () => { fillPods(); restart(); });
  podSel.addEventListener('change', restart);

  function runStart(run) {
    return run && run.RequestTime ? run.RequestTime : (task && task.CreateTime) || new Date(Date.now() - 3600e3).toISOString();
  }

  function fillPods() {
    const run = runs.find((r) => r.InstanceId === runSel.value);
    const keep = podSel.value;
    fill(podSel, h('option', {value: ''}, 'All pods'), (run ? run.PodNames : []).map((p) => h('option', {value: p}, p)));
    podSel.value = [...podSel.options].some((o) => o.value === keep) ? keep : '';
  }

  async function pollLogs() {
    if (!alive || follow.paused || follow.busy || !follow.run) return;
    const mine = follow.token;
    follow.busy = true;
    try {
      const run = runs.find((r) => r.InstanceId === follow.run);
      follow.cursor = await readLines(follow.run, follow.pod, follow.cursor || runStart(run), follow.seen,
        (lines) => view.add(lines), () => alive && mine === follow.token);
      if (mine === follow.token) say(logStatus, '');
    } catch (err) {
      say(logStatus, describe(err));
    } finally {
      if (mine === follow.token) follow.busy = false;
    }
  }

  download.addEventListener('click', async () => {
    const runId = runSel.value;
    if (!runId) return;
    say(logStatus, 'Preparing the download…', 'info');
    const out = [];
    try {
      await readLines(runId, '', runStart(runs.find((r) => r.InstanceId === runId)), new Set(),
        (lines) => { for (const l of lines) out.push(`${l.ts} ${l.pod} ${l.text}\n`); });
      const a = h('a', {href: URL.createObjectURL(new Blob(out, {type: 'text/plain'})), download: `${runId}.log`});
      document.body.append(a);
      a.click();
      a.remove();
      say(logStatus, `Downloaded ${out.length} lines of every pod of ${runId}.`, 'ok');
    } catch (err) {
      say(logStatus, describe(err));
    }
  });

  // -- page -------------------------------------------------------------------------------------
  const section = (label, ...children) => {
    const id = uid('sec');
    return h('section', {'aria-labelledby': id, class: 'card'}, h('h2', {id}, label), ...children);
  };
  const logs = h('section', {'aria-label': 'Logs', class: 'card'}, h('h2', {}, 'Logs'),
    h('div', {class: 'logbar'},
      h('label', {for: runSel.id}, 'Run'), runSel, h('label', {for: podSel.id}, 'Pod'), podSel,
      h('label', {for: logSearch.id, class: 'sr-only'}, 'Search logs'), logSearch, pause, download, view.info),
    logStatus, view.el);
  fill(root,
    h('p', {class: 'crumbs'}, h('a', {href: '#/tasks'}, '← Tasks')),
    h('div', {class: 'titlebar'}, heading, badge),
    h('div', {class: 'actions'}, stopBtn, startBtn, deleteBtn, cloneBtn),
    status,
    h('div', {class: 'grid'},
      section('Details', fields),
      h('div', {},
        section('Timeline', timeline),
        section('Pods', h('div', {class: 'scroll'}, h('table', {}, h('thead', {}, h('tr', {},
          ['Name', 'Status', 'IP', 'Started', 'Ended'].map((c) => h('th', {scope: 'col'}, c)))), podsBody))),
        section('Metrics', metrics),
        section('Pod CPU and memory', usage))),
    logs);

  function renderTask(t) {
    task = t;
    heading.textContent = t.Name || t.Id;
    document.title = `${t.Name} · tione-server console`;
    badge.textContent = t.Status;
    badge.className = `badge st-${(t.Status || '').toLowerCase()}`;
    const active = ACTIVE.includes(t.Status);
    stopBtn.disabled = !active || t.Status === 'STOPPING';
    startBtn.disabled = active;
    deleteBtn.disabled = active;
    fill(fields, Object.entries(t).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, value(v))]));
  }

  function renderRuns(list) {
    runs = list;
    const keep = runSel.value;
    fill(runSel, [...list].reverse().map((r, i) => h('option', {value: r.InstanceId},
      `${i === 0 ? 'Latest' : 'Earlier'} run ${r.InstanceId.slice(-12)} · ${r.Status}`)));
    runSel.value = keep && list.some((r) => r.InstanceId === keep) ? keep : (list.length ? list[list.length - 1].InstanceId : '');
    fillPods();
    fill(timeline, list.flatMap((r) => [
      [r.RequestTime, `${r.Operation === 'START' ? 'Started again' : 'Created'} (run ${r.InstanceId.slice(-12)})`],
      [r.StartTime, 'Running'],
      [r.StopRequestTime, 'Stop requested'],
      [r.EndTime, `${r.Status}${r.FailureReason ? `: ${r.FailureReason}` : ''}${r.Message ? ` (${r.Message})` : ''}`],
    ]).filter(([t]) => t).map(([t, what]) => h('li', {}, h('time', {}, when(t)), ' ', what)));
    if (!list.length) fill(timeline, h('li', {}, 'No runs: this task was imported as history.'));
    if (!follow.run && runSel.value) restart();
  }

  function renderPods(r) {
    fill(podsBody, (r.PodInfoList || []).map((p) => h('tr', {}, h('td', {class: 'mono'}, p.Name), h('td', {}, p.Status),
      h('td', {class: 'mono'}, p.IP), h('td', {}, when(p.StartTime)), h('td', {}, when(p.EndTime)))));
    if (!(r.PodInfoList || []).length) fill(podsBody, h('tr', {}, h('td', {colspan: 5, class: 'empty'}, 'No pods.')));
  }

  function renderMetrics(r) {
    const series = {};
    const byStep = (r.Data || []).some((m) => m.Step);
    for (const m of r.Data || []) {
      for (const p of m.Points || []) (series[p.Name] = series[p.Name] || []).push([byStep ? m.Step : m.Timestamp, p.Value]);
    }
    if (!Object.keys(series).length) {
      fill(metrics, h('p', {class: 'hint'}, 'No metrics pushed (PushTrainingMetrics) for this task.'));
      return;
    }
    fill(metrics, lineChart(series, {title: `Metrics of ${taskId}`, xLabel: byStep ? 'step' : 'time (Unix s)'}));
  }

  function renderUsage(r) {
    const pods = r.Pods || [];
    if (!pods.length) {
      fill(usage, h('p', {class: 'hint'}, 'No pods.'));
      return;
    }
    if (pods.every((p) => !p.Measured)) {
      fill(usage, h('p', {class: 'hint'}, 'Not measured: this server does not sample pod CPU and memory yet.'));
      return;
    }
    fill(usage, pods.map((p) => {
      const s = p.Samples || [];
      const t = (x) => Date.parse(x.Timestamp.replace(/([+-]\d\d)$/, '$1:00')) / 1000;
      return h('div', {}, h('h3', {}, p.PodName), lineChart({
        'CPU cores': s.slice(1).map((x, i) => [t(x), (x.CpuSeconds - s[i].CpuSeconds) / Math.max(1e-9, t(x) - t(s[i]))]),
        'memory MiB': s.map((x) => [t(x), x.MemoryBytes / 1048576]),
      }, {title: `CPU and memory of ${p.PodName}`, xLabel: 'time (Unix s)'}));
    }));
  }

  async function refresh() {
    clearTimeout(timer);
    const params = {Id: taskId, ...project()};
    try {
      const [detail, pods, runList, metric, use] = await Promise.all([
        call('DescribeTrainingTask', params), call('DescribeTrainingTaskPods', params),
        call('DescribeTrainingTaskRuns', params), call('DescribeTrainingMetrics', {TaskId: taskId, ...project()}),
        call('DescribeTrainingPodUsage', params)]);
      if (!alive) return;
      renderTask(detail.TrainingTaskDetail);
      renderPods(pods);
      renderRuns(runList.Runs || []);
      renderMetrics(metric);
      renderUsage(use);
      pollLogs();
      if (status.classList.contains('error') && status.textContent.startsWith('ResourceNotFound')) say(status, '');
    } catch (err) {
      if (!alive) return;
      say(status, describe(err));
    }
    if (alive) timer = setTimeout(refresh, task && ACTIVE.includes(task.Status) ? REFRESH_MS : REFRESH_MS * 5);
  }

  refresh();
  return () => {
    alive = false;
    clearTimeout(timer);
  };
}
