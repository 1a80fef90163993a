// A log view that stays responsive at 100,000 lines (issue 11 item 4): only the lines in view are in the DOM.
import {h} from './dom.js';

const LINE = 18; // px, matches .logview .line in console.css
const OVERSCAN = 20;

export class LogView {
  constructor() {
    this.lines = []; // {ts, pod, text}
    this.shown = []; // indexes into lines that match the search
    this.needle = '';
    this.follow = true;
    this.spacer = h('div', {class: 'spacer'});
    this.window = h('div', {class: 'window'});
    this.el = h('div', {class: 'logview', tabindex: '0', role: 'log', 'aria-label': 'Log lines'}, this.spacer, this.window);
    this.el.addEventListener('scroll', () => {
      this.follow = this.el.scrollTop + this.el.clientHeight >= this.el.scrollHeight - LINE * 2;
      this.paint();
    });
    this.info = h('span', {class: 'hint', 'aria-live': 'polite'});
  }

  /** Add lines (already in time order) and repaint; keeps the view at the bottom while following. */
  add(lines) {
    if (!lines.length) return;
    const start = this.lines.length;
    this.lines.push(...lines);
    for (let i = start; i < this.lines.length; i += 1) if (this.matches(this.lines[i])) this.shown.push(i);
    this.layout();
  }

  clear() {
    this.lines = [];
    this.shown = [];
    this.layout();
  }

  search(needle) {
    this.needle = needle.toLowerCase();
    this.shown = [];
    for (let i = 0; i < this.lines.length; i += 1) if (this.matches(this.lines[i])) this.shown.push(i);
    this.layout();
  }

  matches(line) {
    return !this.needle || line.text.toLowerCase().includes(this.needle) || line.pod.toLowerCase().includes(this.needle);
  }

  layout() {
    this.spacer.style.height = `${this.shown.length * LINE}px`;
    this.info.textContent = this.needle ? `${this.shown.length} of ${this.lines.length} lines match`
      : `${this.lines.length} lines`;
    if (this.follow) this.el.scrollTop = this.el.scrollHeight;
    this.paint();
  }

  paint() {
    const first = Math.max(0, Math.floor(this.el.scrollTop / LINE) - OVERSCAN);
    const count = Math.ceil((this.el.clientHeight || 400) / LINE) + OVERSCAN * 2;
    const rows = [];
    for (let k = first; k < Math.min(this.shown.length, first + count); k += 1) {
      const line = this.lines[this.shown[k]];
      rows.push(h('div', {class: 'line'}, h('span', {class: 'ts'}, line.ts.slice(11, 23)), ' ',
        h('span', {class: 'pod'}, line.pod), ' ', line.text));
    }
    this.window.style.transform = `translateY(${first * LINE}px)`;
    this.window.replaceChildren(...rows);
  }
}
