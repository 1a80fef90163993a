// The new-task form (issue 11 item 5): CreateTrainingTask with instance types and prices from
// DescribeBillingSpecs / DescribeBillingSpecsPrice; a refusal is shown next to the field its message names.
import {call, describe, project} from './api.js';
import {field, fill, h, say} from './dom.js';
import {current} from './session.js';

const MODES = ['', 'DDP', 'MPI', 'HOROVOD', 'PS_WORKER', 'SPARK'];

/** `KEY=VALUE` lines -> [[KEY, VALUE]]; blank lines are skipped. */
function pairs(text) {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    const i = l.indexOf('=');
    return i < 0 ? [l, ''] : [l.slice(0, i).trim(), l.slice(i + 1)];
  });
}

export function mountNewTask(root, query) {
  document.title = 'New task · tione-server console';
  const status = h('div', {role: 'alert', class: 'msg'});
  const f = {
    name: field('Name', h('input', {name: 'Name', required: true, maxlength: 60, spellcheck: 'false'})),
    charge: field('Charge type', h('select', {name: 'ChargeType'}, h('option', {value: 'POSTPAID_BY_HOUR'}, 'POSTPAID_BY_HOUR'),
      h('option', {value: 'PREPAID'}, 'PREPAID'))),
    group: field('Resource group', h('input', {name: 'ResourceGroupId', spellcheck: 'false'}), 'PREPAID tasks only.'),
    type: field('Instance type', h('select', {name: 'InstanceType'})),
    count: field('Instance count', h('input', {name: 'InstanceNum', type: 'number', min: 1, value: '1'}),
      'With DDP, one pod per instance.'),
    mode: field('Training mode', h('select', {name: 'TrainingMode'}, MODES.map((m) => h('option', {value: m}, m || '(none)')))),
    image: field('Image', h('input', {name: 'ImageUrl', value: 'host', spellcheck: 'false'}), 'CUSTOM image URL; `host` is this machine\'s own system, read-only.'),
    bucket: field('COS bucket', h('input', {name: 'Bucket', spellcheck: 'false'})),
    path: field('COS code path', h('input', {name: 'Path', spellcheck: 'false'}), 'Code directory inside the bucket.'),
    cmd: field('Command', h('textarea', {name: 'StartCmd', rows: 3, spellcheck: 'false'})),
    envs: field('Environment', h('textarea', {name: 'Envs', rows: 3, spellcheck: 'false', placeholder: 'KEY=value, one a line'})),
    tags: field('Tags', h('textarea', {name: 'Tags', rows: 2, spellcheck: 'false', placeholder: 'key=value, one a line'})),
  };
  const price = h('p', {class: 'hint', 'aria-live': 'polite'});
  const errors = {};
  for (const [k, x] of Object.entries(f)) {
    errors[k] = h('div', {class: 'fielderror', id: `${x.input.id}-err`});
    x.wrap.append(errors[k]);
  }
  const submit = h('button', {type: 'submit', class: 'primary'}, 'Create task');
  const form = h('form', {class: 'card newtask', novalidate: true},
    h('h1', {}, 'New training task'), status,
    h('div', {class: 'cols'},
      h('fieldset', {}, h('legend', {}, 'Task'), f.name.wrap, f.charge.wrap, f.group.wrap, f.mode.wrap, f.tags.wrap),
      h('fieldset', {}, h('legend', {}, 'Resources'), f.type.wrap, price, f.count.wrap),
      h('fieldset', {}, h('legend', {}, 'Code'), f.image.wrap, f.bucket.wrap, f.path.wrap, f.cmd.wrap, f.envs.wrap)),
    submit);
  fill(root, form);

  let specs = [];
  let prices = {};
  async function loadSpecs() {
    const charge = f.charge.input.value;
    try {
      const r = await call('DescribeBillingSpecs', {ChargeType: charge, TaskType: 'TRAIN', ...project()});
      specs = r.Specs || [];
      const p = specs.length ? await call('DescribeBillingSpecsPrice', {...project(),
        SpecsParam: specs.map((s) => ({SpecName: s.SpecName, SpecCount: 1}))}) : {SpecsPrice: []};
      prices = Object.fromEntries((p.SpecsPrice || []).map((x) => [x.SpecName, x]));
    } catch (err) {
      say(status, describe(err));
    }
    const keep = f.type.input.dataset.want || f.type.input.value;
    fill(f.type.input, specs.map((s) => h('option', {value: s.SpecName, disabled: s.Available === false},
      `${s.SpecName}${s.SpecAlias ? ` — ${s.SpecAlias}` : ''}${s.Available === false ? ' (not available)' : ''}`)));
    if (specs.some((s) => s.SpecName === keep)) f.type.input.value = keep;
    showPrice();
  }
  function showPrice() {
    const p = prices[f.type.input.value];
    price.textContent = p ? `Price: ${p.RealTotalCost ?? p.TotalCost} per hour per instance (TotalCost ${p.TotalCost}; `
      + 'DescribeBillingSpecsPrice units).' : '';
  }
  f.charge.input.addEventListener('change', loadSpecs);
  f.type.input.addEventListener('change', showPrice);

  async function cloneFrom(id) {
    try {
      const t = (await call('DescribeTrainingTask', {Id: id, ...project()})).TrainingTaskDetail;
      f.name.input.value = `${t.Name}-copy`.slice(0, 60);
      f.charge.input.value = t.ChargeType || 'POSTPAID_BY_HOUR';
      f.group.input.value = t.ResourceGroupId || '';
      const rc = (t.ResourceConfigInfos || [])[0] || {};
      f.type.input.dataset.want = rc.InstanceType || '';
      f.count.input.value = String(rc.InstanceNum || 1);
      f.mode.input.value = t.TrainingMode || '';
      f.image.input.value = (t.ImageInfo && t.ImageInfo.ImageUrl) || '';
      const code = t.CodePackagePath || {};
      f.bucket.input.value = code.Bucket || '';
      f.path.input.value = (code.Paths || [])[0] || '';
      f.cmd.input.value = (t.StartCmdInfo && t.StartCmdInfo.StartCmd) || '';
      f.envs.input.value = (t.Envs || []).map((e) => `${e.Name}=${e.Value}`).join('\n');
      f.tags.input.value = (t.Tags || []).map((x) => `${x.TagKey}=${x.TagValue}`).join('\n');
      say(status, `Filled from ${id}: change what differs, then Create task.`, 'info');
    } catch (err) {
      say(status, describe(err));
    }
  }

  function request() {
    const req = {...project(), Name: f.name.input.value.trim(), ChargeType: f.charge.input.value,
      ResourceConfigInfos: [{Role: 'WORKER', InstanceType: f.type.input.value,
        InstanceNum: parseInt(f.count.input.value, 10) || 0}],
      ImageInfo: {ImageType: 'CUSTOM', ImageUrl: f.image.input.value.trim()},
      StartCmdInfo: {StartCmd: f.cmd.input.value}};
    if (f.group.input.value.trim()) req.ResourceGroupId = f.group.input.value.trim();
    if (f.mode.input.value) req.TrainingMode = f.mode.input.value;
    if (f.bucket.input.value.trim() || f.path.input.value.trim()) {
      req.CodePackagePath = {Bucket: f.bucket.input.value.trim(), Region: current().region, Paths: [f.path.input.value.trim()]};
    }
    const envs = pairs(f.envs.input.value);
    if (envs.length) req.Envs = envs.map(([Name, Value]) => ({Name, Value}));
    const tags = pairs(f.tags.input.value);
    if (tags.length) req.Tags = tags.map(([TagKey, TagValue]) => ({TagKey, TagValue}));
    return req;
  }

  /** The form field a refusal is about: the first `Parameter` its message names. */
  function fieldOf(message) {
    const m = message.match(/`([A-Za-z]+)(?:\.(\d+))?(?:\.([A-Za-z]+))?/);
    if (!m) return null;
    const [, top, , sub] = m;
    const map = {Name: 'name', ChargeType: 'charge', ResourceGroupId: 'group', TrainingMode: 'mode', ImageInfo: 'image',
      StartCmdInfo: 'cmd', Envs: 'envs', Tags: 'tags', CodePackagePath: sub === 'Bucket' ? 'bucket' : 'path'};
    if (top === 'ResourceConfigInfos') return sub === 'InstanceNum' ? 'count' : 'type';
    return map[top] || null;
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const [k, e] of Object.entries(errors)) {
      e.textContent = '';
      f[k].input.removeAttribute('aria-invalid');
      f[k].input.removeAttribute('aria-describedby');
    }
    say(status, '');
    submit.disabled = true;
    try {
      const r = await call('CreateTrainingTask', request());
      location.hash = `#/tasks/${encodeURIComponent(r.Id)}`;
    } catch (err) {
      const text = describe(err);
      const where = err.code ? fieldOf(err.message) : null;
      if (where) {
        errors[where].textContent = text;
        f[where].input.setAttribute('aria-invalid', 'true');
        f[where].input.setAttribute('aria-describedby', errors[where].id);
        f[where].input.focus();
      }
      say(status, text);
    } finally {
      submit.disabled = false;
    }
  });

  loadSpecs().then(() => {
    const clone = query.get('clone');
    if (clone) cloneFrom(clone).then(loadSpecs);
  });
  f.name.input.focus();
  return () => {};
}
