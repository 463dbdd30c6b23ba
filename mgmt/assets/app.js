// Crossline web UI: the little the browser must do itself.
// - live updates: one EventSource on /desk/stream; a changed conversation
//   refreshes the inbox list and, when open, its timeline; a changed fleet
//   device refreshes the fleet list's page and, when open, its device page
//   (htmx does the fetching: elements listen for `desk-changed`,
//   `conv-changed`, `board-changed`, `fleet-changed`, `device-changed` on
//   <body>);
// - selects marked data-autosubmit submit their form; canned responses fill
//   the reply box (and its hidden `canned` field names them); Ctrl+Enter sends;
// - keyboard shortcuts (see docs/WEB.md).

const body = document.body;

// A refresh asked for while an element's refresh by the same event is in
// flight would be queued by htmx on that element, which the answer then
// replaces (hx-swap="outerHTML"): the queued one is dropped with it, and a
// change that arrived meanwhile (after the server computed the answer) was
// never shown. So such an event is fired again once the request is over.
const LIVE = new Set(['desk-changed', 'conv-changed', 'board-changed', 'fleet-changed', 'device-changed']);
const inflight = new Set();
const again = new Set();
let fired = 0;
function liveEvent(e) {
  const t = e.detail && e.detail.requestConfig && e.detail.requestConfig.triggeringEvent;
  return t && LIVE.has(t.type) ? t.type : null;
}
document.addEventListener('htmx:beforeRequest', (e) => {
  const name = liveEvent(e);
  if (name) inflight.add(name);
});
document.addEventListener('htmx:afterRequest', (e) => {
  const name = liveEvent(e);
  if (!name) return;
  inflight.delete(name);
  if (again.delete(name)) soon(name);
});

function fire(name, detail) {
  if (inflight.has(name)) again.add(name);
  body.dispatchEvent(new CustomEvent(name, { detail }));
  // How many refreshes were asked for (the browser tests wait on it).
  body.setAttribute('data-fired', String(++fired));
}

// Coalesce bursts: one refresh per kind per 150 ms (per second for the
// fleet, where thousands of devices may come and go at once).
const pending = new Map();
function soon(name, detail, ms = 150) {
  if (pending.has(name)) return;
  pending.set(name, setTimeout(() => { pending.delete(name); fire(name, detail); }, ms));
}

function openConversation() {
  const el = document.querySelector('[data-conversation]');
  return el ? el.getAttribute('data-conversation') : null;
}

function openDevice() {
  const el = document.querySelector('[data-fleet-device]');
  return el ? el.getAttribute('data-fleet-device') : null;
}

function connect() {
  if (!document.querySelector('[data-testid=inbox-list], [data-testid=board], [data-testid=fleet-list], [data-fleet-device]')) return null;
  const es = new EventSource('/desk/stream');
  es.addEventListener('change', (e) => {
    soon('desk-changed');
    soon('board-changed');
    if (openConversation() === e.data) soon('conv-changed');
  });
  es.addEventListener('board', () => soon('board-changed'));
  es.addEventListener('fleet', (e) => {
    soon('fleet-changed', undefined, 1000);
    if (openDevice() === e.data) soon('device-changed', undefined, 300);
  });
  // Whatever changed while this page was not listening (between its
  // render and the stream's first open, or while the stream was down and
  // reconnecting) was not sent to it: refresh as after a lag.
  const missed = () => {
    soon('desk-changed'); soon('conv-changed'); soon('board-changed');
    soon('fleet-changed', undefined, 1000); soon('device-changed', undefined, 300);
  };
  es.addEventListener('lagged', missed);
  es.addEventListener('open', () => { body.setAttribute('data-live', 'on'); missed(); });
  es.addEventListener('error', () => body.setAttribute('data-live', 'off'));
  return es;
}

// A boosted link or form whose answer is a refusal (a wrong password's 401,
// a 403, a 429 with the wait) shows that page, which says why: htmx's
// default ignores 4xx/5xx answers, which left the user with no message.
document.addEventListener('htmx:beforeSwap', (e) => {
  const x = e.detail.xhr;
  if (e.detail.boosted && x && x.status >= 400
      && (x.getResponseHeader('Content-Type') || '').startsWith('text/html')) {
    e.detail.shouldSwap = true;
    e.detail.isError = false;
  }
});

// A conversation opens at its newest message; a live refresh of the same
// conversation stays at the bottom if the view was there, else where the
// reader was (reading older messages is not interrupted).
let lastConversation = null;
let atBottom = true;
let readingAt = 0;
document.addEventListener('scroll', (e) => {
  const t = e.target;
  if (t && t.classList && t.classList.contains('timeline')) {
    atBottom = t.scrollHeight - t.scrollTop - t.clientHeight < 40;
    readingAt = t.scrollTop;
  }
}, true);
function settleTimeline() {
  const id = openConversation();
  const list = document.querySelector('#timeline .timeline');
  if (list) {
    if (id !== lastConversation || atBottom) {
      list.scrollTop = list.scrollHeight;
      atBottom = true;
    } else {
      list.scrollTop = readingAt;
    }
  }
  lastConversation = id;
}
settleTimeline();
document.addEventListener('htmx:afterSettle', settleTimeline);

let stream = connect();
// After an htmx-boosted navigation the page may have gained a list.
document.addEventListener('htmx:afterSettle', () => { if (!stream) stream = connect(); });

document.addEventListener('change', (e) => {
  const t = e.target;
  if (t.matches && t.matches('select[data-autosubmit]') && t.form) {
    const here = t.form.querySelector('[data-here]');
    if (here) here.value = location.pathname + location.search;
    t.form.requestSubmit();
  }
  if (t.matches && t.matches('select[data-canned]') && t.value) {
    const box = document.getElementById(t.getAttribute('data-target'));
    if (box) { box.value = box.value ? box.value + '\n' + t.value : t.value; box.focus(); }
    // The reply says which canned responses it used (counted once sent).
    const used = t.form && t.form.querySelector('[data-canned-used]');
    const title = t.options[t.selectedIndex] ? t.options[t.selectedIndex].text : '';
    if (used && title) used.value = used.value ? used.value + '\n' + title : title;
    t.value = '';
  }
});

document.addEventListener('keydown', (e) => {
  const t = e.target;
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && t.matches && t.matches('[data-submit-on-ctrl-enter]')) {
    e.preventDefault();
    t.form.requestSubmit();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (t.closest && t.closest('input, textarea, select, [contenteditable]')) {
    if (e.key === 'Escape') t.blur();
    return;
  }
  const rows = [...document.querySelectorAll('[data-testid=conv-row] a')];
  const cur = rows.findIndex((a) => a.closest('.kbd'));
  const mark = (i) => {
    rows.forEach((a) => a.closest('li').classList.remove('kbd'));
    const a = rows[Math.max(0, Math.min(rows.length - 1, i))];
    if (a) { a.closest('li').classList.add('kbd'); a.focus(); }
  };
  const click = (sel) => { const b = document.querySelector(sel); if (b) { e.preventDefault(); b.click(); } };
  switch (e.key) {
    case 'j': mark(cur + 1); break;
    case 'k': mark(cur < 0 ? 0 : cur - 1); break;
    case 'r': { const b = document.getElementById('reply-text'); if (b) { e.preventDefault(); b.focus(); } break; }
    case 'n': { const b = document.getElementById('note-text'); if (b) { e.preventDefault(); b.focus(); } break; }
    case 'h': click('[data-testid=act-hold]'); break;
    case 'u': click('[data-testid=act-resume]'); break;
    case 'e': click('[data-testid=act-resolve]'); break;
    case '/': { const f = document.querySelector('[data-testid=filter-channel]'); if (f) { e.preventDefault(); f.focus(); } break; }
    case '?': { const d = document.getElementById('keys'); if (d && d.showModal) d.showModal(); break; }
  }
});
