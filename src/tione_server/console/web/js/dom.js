// Tiny DOM helpers (issue 11): the console builds its pages with these; no framework, no inline script.

/** Create an element: h('button', {type: 'button', onclick: f}, 'Stop'). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  let value;
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') value = v;
    else if (k === 'checked' || k === 'selected') el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  if (value !== undefined) el.value = value;
  return el;
}

/** Append children, skipping null/undefined/false; strings become text (never HTML). */
export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let seq = 0;
/** A fresh id for label/aria wiring. */
export function uid(prefix = 'f') {
  seq += 1;
  return `${prefix}-${seq}`;
}

/** A labelled form field: returns {wrap, input}. */
export function field(label, input, hint) {
  input.id = input.id || uid();
  const wrap = h('div', {class: 'field'}, h('label', {for: input.id}, label), input);
  if (hint) wrap.append(h('small', {class: 'hint'}, hint));
  return {wrap, input};
}

/** Show a message in an alert region (role=alert), or clear it with ''. */
export function say(el, text, kind = 'error') {
  el.className = text ? `msg ${kind}` : 'msg';
  el.textContent = text || '';
}

/** `2025-05-28T18:18:33+08` -> `2025-05-28 18:18:33`. */
export function when(text) {
  return text ? text.replace('T', ' ').replace(/([+-]\d\d(:?\d\d)?|Z)$/, '') : '';
}
