/* hookline dashboard – plain ES2020, no dependencies.
 * Talks only to the public JSON API with "Authorization: Bearer <token>".
 * The token lives in sessionStorage["hookline.token"]; it is never put in a URL
 * and never written to the console. */
'use strict';

(() => {
  const TOKEN_KEY = 'hookline.token';
  const PAGE_SIZE = 20;
  const AUTO_REFRESH_MS = 5000;
  const FOLLOW_MS = 500; // while a resend or a recovery is under way
  const FOLLOW_MAX_MS = 60000;
  const REJECTED_MSG = 'Your token was rejected; sign in again.';
  const API = '/api/webhooks';

  const $ = (id) => document.getElementById(id);

  const state = {
    token: null,
    session: 0, // bumped on sign-in / sign-out / 401 so stale responses are ignored
    availableEvents: [],
    endpoints: [], // the user's endpoints, the primary first
    endpointsLoaded: false,
    selectedId: null, // the endpoint the form shows; null: a new one
    returnId: null, // where "Cancel" on a new endpoint goes back to
    view: { endpointId: '', optionsKey: '' }, // whose deliveries stats, chart and log show
    knownEvents: new Set(), // events seen in stats/logs, for the filter
    logs: { offset: 0, event: '', success: '', total: 0, key: '', inflight: 0 },
    stats: { key: '', inflight: 0 },
    chart: { window: '7d', data: null, key: '' },
    detail: { id: null, status: null, key: '', returnId: null, row: null },
    resend: null, // {id, attempts, error}: the last resend and how it went
    recover: { endpointId: null, taskId: null, returnFocus: null, previous: false, watching: new Set() },
    gen: { logs: 0, stats: 0, chart: 0, detail: 0, endpoints: 0 },
    errors: new Map(),
    errorsText: '',
    timer: null,
    clock: null, // updates relative times ("in 2 minutes") every second
  };

  /* ------------------------------------------------------------------ utils */

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = v;
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const c of children) el.append(c instanceof Node ? c : String(c));
    return el;
  }

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  const timeShortFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const dateShortFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
  const dateTimeShortFmt = new Intl.DateTimeFormat(undefined, {
    month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  });

  function parseDate(iso) {
    if (!iso) return null;
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  /** <time> in the user's locale with the ISO string kept in datetime + title. */
  function timeEl(iso, fmt = dateTimeFmt) {
    const d = parseDate(iso);
    if (!d) return document.createTextNode(iso ? String(iso) : '—');
    return h('time', { datetime: iso, title: iso }, fmt.format(d));
  }

  const exactFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'long' });
  const relativeFmt = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

  /** "in 2 minutes", "3 hours ago"; kind 'next' says "due now" once the time has come. */
  function relativeText(d, kind) {
    const secs = Math.round((d.getTime() - Date.now()) / 1000);
    if (kind === 'next' && secs <= 0) return 'due now';
    const abs = Math.abs(secs);
    if (abs < 60) return relativeFmt.format(secs, 'second');
    if (abs < 3600) return relativeFmt.format(Math.round(secs / 60), 'minute');
    if (abs < 86400) return relativeFmt.format(Math.round(secs / 3600), 'hour');
    return relativeFmt.format(Math.round(secs / 86400), 'day');
  }

  /** <time> saying how far away it is; the exact time on hover (title) and in datetime. */
  function relTimeEl(iso, kind) {
    const d = parseDate(iso);
    if (!d) return document.createTextNode('—');
    return h('time', { datetime: iso, title: exactFmt.format(d), 'data-rel': kind }, relativeText(d, kind));
  }

  function updateRelativeTimes() {
    for (const el of document.querySelectorAll('time[data-rel]')) {
      const d = parseDate(el.getAttribute('datetime'));
      if (d) setText(el, relativeText(d, el.dataset.rel));
    }
  }

  const sleep = (ms) => new Promise((resolve) => { window.setTimeout(resolve, ms); });

  function show(el, visible) {
    el.hidden = !visible;
  }

  function focusEl(el) {
    if (el && typeof el.focus === 'function') el.focus({ preventScroll: false });
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  /** Event name in <code>, with line-break opportunities after "." and "_". */
  function eventCode(name) {
    const parts = String(name || '').split(/(?<=[._])/);
    const code = h('code');
    parts.forEach((part, i) => {
      if (i) code.append(h('wbr'));
      code.append(part);
    });
    return code;
  }

  function numText(v) {
    return v === null || v === undefined || v === '' ? '–' : String(v);
  }

  /* -------------------------------------------------------------------- API */

  class ApiError extends Error {
    constructor(status, message, fields, retryAfter) {
      super(message);
      this.status = status;
      this.fields = fields || null;
      this.retryAfter = retryAfter || null;
    }
    get silent() {
      return this.status === 401 || this.status === -1;
    }
  }

  function retryAfterSeconds(res) {
    const raw = res.headers.get('Retry-After');
    if (!raw) return null;
    if (/^\d+$/.test(raw.trim())) return Number(raw.trim());
    const when = Date.parse(raw);
    if (Number.isNaN(when)) return null;
    return Math.max(0, Math.ceil((when - Date.now()) / 1000));
  }

  /** One HTTP call; returns {status, ok, data, res}. Throws ApiError(0) on network failure. */
  async function request(token, method, path, body) {
    const init = {
      method,
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
      cache: 'no-store',
      credentials: 'same-origin',
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (_) {
      throw new ApiError(0, 'Could not reach the server. Check your connection and try again.');
    }
    let data = null;
    try {
      const text = await res.text();
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    return { status: res.status, ok: res.ok, data, res };
  }

  /** Authenticated call within the current session. 401 signs the user out. */
  async function api(method, path, body) {
    const session = state.session;
    if (!state.token) throw new ApiError(-1, 'Not signed in');
    const r = await request(state.token, method, path, body);
    if (session !== state.session) throw new ApiError(-1, 'stale');
    if (r.status === 401) {
      onUnauthorized();
      throw new ApiError(401, REJECTED_MSG);
    }
    if (!r.ok) {
      const d = r.data && typeof r.data === 'object' ? r.data : {};
      let msg = typeof d.error === 'string' && d.error ? d.error : `Request failed (HTTP ${r.status})`;
      const ra = r.status === 429 ? retryAfterSeconds(r.res) : null;
      if (r.status === 429 && ra !== null) msg += ` Try again in ${plural(ra, 'second', 'seconds')}.`;
      throw new ApiError(r.status, msg, d.fields && typeof d.fields === 'object' ? d.fields : null, ra);
    }
    return r.data || {};
  }

  /* ---------------------------------------------------------------- errors */

  const ERROR_PREFIX = {
    endpoints: 'Could not load your endpoints',
    test: 'Could not send a test webhook',
    regenerate: 'Could not regenerate the secret',
    delete: 'Could not delete the endpoint',
    logs: 'Could not load the delivery log',
    stats: 'Could not load statistics',
    chart: 'Could not load the chart',
    detail: 'Could not load the delivery details',
    reenable: 'Could not re-enable the endpoint',
  };

  function reportError(source, err) {
    if (err instanceof ApiError && err.silent) return;
    const msg = err && err.message ? err.message : 'Unexpected error';
    state.errors.set(source, `${ERROR_PREFIX[source] || 'Error'}: ${msg}`);
    renderErrors();
  }

  function clearError(source) {
    if (state.errors.delete(source)) renderErrors();
  }

  function clearAllErrors() {
    state.errors.clear();
    renderErrors();
  }

  function renderErrors() {
    const box = $('api-error');
    const msgs = [...state.errors.values()];
    const text = msgs.join('\n');
    if (text === state.errorsText) return; // don't re-announce identical errors
    state.errorsText = text;
    box.replaceChildren(...msgs.map((m) => h('p', null, m)));
    show($('api-error-dismiss'), msgs.length > 0);
  }

  /* ------------------------------------------------------- sign in / out */

  function showSignIn(message) {
    show($('dashboard-view'), false);
    show($('session-actions'), false);
    show($('signin-view'), true);
    setText($('signin-error'), message || '');
    setSigninBusy(false);
    focusEl($('token-input'));
  }

  function setSigninBusy(busy, text) {
    $('sign-in').disabled = busy;
    setText($('signin-status'), busy ? text || 'Signing in…' : '');
  }

  async function startSession(token, restoring) {
    const session = ++state.session;
    setText($('signin-error'), '');
    setSigninBusy(true, restoring ? 'Checking your saved token…' : 'Signing in…');
    let r;
    try {
      r = await request(token, 'GET', `${API}/config`);
    } catch (err) {
      if (session !== state.session) return;
      setSigninBusy(false);
      setText($('signin-error'), err.message);
      return;
    }
    if (session !== state.session) return;
    setSigninBusy(false);
    if (r.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn(restoring ? REJECTED_MSG : 'That token was rejected. Check it and try again.');
      return;
    }
    if (!r.ok || !r.data) {
      const msg = r.data && r.data.error ? r.data.error : `HTTP ${r.status}`;
      setText($('signin-error'), `Could not sign in: ${msg}`);
      return;
    }
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token-input').value = '';
    setText($('signin-error'), '');
    setText($('signin-status'), '');
    show($('signin-view'), false);
    show($('dashboard-view'), true);
    show($('session-actions'), true);
    if (Array.isArray(r.data.availableEvents)) state.availableEvents = r.data.availableEvents.slice();
    renderEventFilter();
    focusEl($('dashboard-title'));
    refreshData({ endpoints: true, logs: true, stats: true, chart: true });
    startTimer();
  }

  function endSession() {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.session += 1;
    stopTimer();
    resetDashboard();
  }

  function onUnauthorized() {
    endSession();
    showSignIn(REJECTED_MSG);
  }

  function signOut() {
    endSession();
    showSignIn('');
    setText($('signin-status'), 'You have signed out.');
  }

  function resetDashboard() {
    state.availableEvents = [];
    state.endpoints = [];
    state.endpointsLoaded = false;
    state.selectedId = null;
    state.returnId = null;
    state.view = { endpointId: '', optionsKey: '' };
    state.knownEvents = new Set();
    state.logs = { offset: 0, event: '', success: '', total: 0, key: '', inflight: 0 };
    state.stats = { key: '', inflight: 0 };
    state.chart = { window: '7d', data: null, key: '' };
    parkDetail();
    state.detail = { id: null, status: null, key: '', returnId: null, row: null };
    state.resend = null;
    closeRecover(false);
    state.recover = { endpointId: null, taskId: null, returnFocus: null, previous: false, watching: new Set() };
    clearAllErrors();

    $('config-url').value = '';
    $('config-description').value = '';
    $('config-enabled').checked = true;
    $('config-rate-limit').value = '';
    $('event-list').replaceChildren();
    $('header-rows').replaceChildren();
    numberHeaderRows();
    clearFieldErrors();
    setStatus($('config-status'), '');
    setStatus($('test-result'), '');
    setStatus($('endpoints-status'), '');
    setText($('config-meta'), '');
    hideSecret();
    closeConfirm('regenerate');
    closeConfirm('delete');
    show($('empty-config'), false);
    show($('config-actions'), false);
    show($('editor'), false);
    show($('endpoint-add'), false);
    show($('endpoint-list-wrap'), false);
    show($('primary-hint'), false);
    $('endpoint-rows').replaceChildren();
    $('view-endpoint').replaceChildren(h('option', { value: '' }, 'All endpoints'));
    show($('view-bar'), false);

    for (const id of ['stats-total', 'stats-successful', 'stats-failed', 'stats-pending',
      'stats-success-rate', 'stats-average-attempts']) setText($(id), '–');
    $('stats-by-event').replaceChildren();

    $('chart-box').replaceChildren();
    $('chart-table-wrap').replaceChildren();
    setText($('chart-summary'), '');
    for (const b of document.querySelectorAll('[data-window]')) {
      b.setAttribute('aria-pressed', String(b.dataset.window === '7d'));
    }

    const fe = $('filter-event');
    fe.replaceChildren(h('option', { value: '' }, 'All events'));
    $('filter-success').value = '';
    $('logs-body').replaceChildren();
    show($('logs-wrap'), false);
    show($('logs-pager'), false);
    show($('empty-logs'), false);
    setText($('logs-page-info'), '');
    $('logs-prev').disabled = true;
    $('logs-next').disabled = true;
    $('detail-body').replaceChildren();
    setStatus($('logs-status'), '');
    $('editor-banner').replaceChildren();
    setText($('last-updated'), '');
  }

  /* -------------------------------------------------------- endpoints */

  function setStatus(el, text, kind) {
    setText(el, text);
    el.classList.toggle('ok', kind === 'ok');
    el.classList.toggle('bad', kind === 'bad');
  }

  const endpointPath = (id) => `${API}/endpoints/${encodeURIComponent(id)}`;

  function endpointById(id) {
    return state.endpoints.find((ep) => ep.id === id) || null;
  }

  function selectedEndpoint() {
    return state.selectedId ? endpointById(state.selectedId) : null;
  }

  /** Short name for tables: the description, else the URL. */
  function endpointName(ep) {
    return ep.description ? ep.description : ep.url;
  }

  /** Unambiguous name for buttons and menus: the description and the URL. */
  function endpointLabel(ep) {
    return ep.description ? `${ep.description} (${ep.url})` : ep.url;
  }

  function defaultEndpointId() {
    const ep = state.endpoints.find((e) => e.primary) || state.endpoints[0];
    return ep ? ep.id : null;
  }

  async function loadEndpoints(fill) {
    const gen = ++state.gen.endpoints;
    try {
      const d = await api('GET', `${API}/endpoints`);
      if (gen !== state.gen.endpoints) return;
      clearError('endpoints');
      applyEndpoints(Array.isArray(d.endpoints) ? d.endpoints : [], fill);
    } catch (err) {
      if (gen === state.gen.endpoints) reportError('endpoints', err);
    }
  }

  /** Take a fresh list from the server. fill=true (re)fills the form from the selected
   * endpoint (choosing the primary one if none is); otherwise what the user typed stays. */
  function applyEndpoints(list, fill) {
    state.endpoints = list;
    state.endpointsLoaded = true;
    const gone = state.selectedId !== null && !endpointById(state.selectedId);
    if (gone || (fill && state.selectedId === null)) {
      state.selectedId = defaultEndpointId();
      if (gone) hideSecret();
      fill = true;
    }
    renderEndpoints();
    if (fill) fillForm();
    else renderEditorChrome();
  }

  /** Replace one endpoint in the list with the server's answer. */
  function putEndpoint(ep) {
    const i = state.endpoints.findIndex((e) => e.id === ep.id);
    if (i >= 0) state.endpoints[i] = ep;
    else state.endpoints.push(ep);
  }

  function renderEndpoints() {
    const n = state.endpoints.length;
    show($('empty-config'), state.endpointsLoaded && n === 0);
    show($('endpoint-list-wrap'), n > 0);
    show($('primary-hint'), n > 1 && state.endpoints.some((ep) => ep.primary));
    renderEndpointRows();
    renderViewFilter();
  }

  function eventsSummary(ep) {
    const chosen = Array.isArray(ep.enabledEvents) ? ep.enabledEvents : [];
    const all = state.availableEvents;
    if (all.length && all.every((e) => chosen.includes(e))) return 'All events';
    if (!chosen.length) return 'No events';
    if (chosen.length === 1) return chosen[0];
    return `${chosen.length} of ${all.length} events`;
  }

  function endpointExtras(ep) {
    const parts = [];
    const headerCount = Object.keys(ep.headers || {}).length;
    if (headerCount) parts.push(plural(headerCount, 'header', 'headers'));
    if (ep.rateLimit !== null && ep.rateLimit !== undefined) parts.push(`at most ${ep.rateLimit}/s`);
    return parts.join(' · ');
  }

  // Why an endpoint is disabled (its disabledReason), in words.
  const DISABLED_REASON = {
    gone: ['Disabled automatically', 'its receiver answered 410 Gone, which says the URL is no longer in use.'],
    failing: ['Disabled automatically', 'deliveries to it kept failing.'],
    user: ['Disabled by hand', 'someone switched it off.'],
  };

  /** The banner on an endpoint that was disabled (with when and why), or null. */
  function disabledBanner(ep) {
    if (ep.enabled || (!ep.disabledAt && !ep.disabledReason)) return null;
    const reason = ep.disabledReason || '';
    const [what, why] = DISABLED_REASON[reason] || ['Disabled', reason ? `reason: ${reason}.` : 'no reason recorded.'];
    const when = ep.disabledAt
      ? [' on ', timeEl(ep.disabledAt), ' (', relTimeEl(ep.disabledAt, 'past'), ')']
      : [];
    const advice = reason === 'user' ? ''
      : ' Fix the receiver, then re-enable it (a successful test webhook does too); Recover then sends the deliveries that failed meanwhile.';
    return h('div', {
      class: 'banner warn', 'data-testid': 'disabled-banner', 'data-reason': reason, 'data-id': ep.id,
    },
    h('p', { 'data-testid': 'disabled-reason' }, h('strong', null, what), ...when, `: ${why}`,
      ' No events are sent to it until it is re-enabled.', advice),
    h('button', {
      type: 'button', 'data-action': 'reenable', 'data-id': ep.id, 'data-testid': 'reenable',
    }, 'Re-enable', h('span', { class: 'visually-hidden' }, ` ${endpointLabel(ep)}`)));
  }

  function renderEndpointRows() {
    const body = $('endpoint-rows');
    // keep keyboard focus on the same button of the same row across the re-render
    const active = document.activeElement;
    const focused = active && body.contains(active) && active.dataset.action
      ? { id: active.dataset.id, action: active.dataset.action } : null;

    const rows = state.endpoints.flatMap((ep) => {
      const isSelected = ep.id === state.selectedId;
      const hiddenName = h('span', { class: 'visually-hidden' }, ` ${endpointLabel(ep)}`);
      const extras = endpointExtras(ep);
      const banner = disabledBanner(ep);
      const row = h('tr', {
        'data-testid': 'endpoint-row', 'data-id': ep.id,
        class: [isSelected ? 'selected' : '', banner ? 'has-banner' : ''].join(' ').trim() || null,
      },
      h('td', { class: 'endpoint-cell' },
        h('code', { class: 'endpoint-url', 'data-testid': 'endpoint-url' }, ep.url),
        ep.description ? h('span', { class: 'endpoint-description', 'data-testid': 'endpoint-description' }, ep.description) : null,
        h('span', { class: 'endpoint-badges' },
          ep.primary ? h('span', { class: 'badge primary', 'data-testid': 'endpoint-primary' }, 'Primary') : null,
          isSelected ? h('span', { class: 'badge editing' }, 'Shown below') : null)),
      h('td', null, ep.enabled
        ? h('span', { class: 'badge ok', 'data-testid': 'endpoint-state' }, 'Enabled')
        : h('span', { class: 'badge off', 'data-testid': 'endpoint-state' }, 'Disabled')),
      h('td', { class: 'opt small' }, eventsSummary(ep), extras ? h('span', { class: 'muted endpoint-extras' }, extras) : null),
      h('td', { class: 'endpoint-actions' },
        h('button', {
          type: 'button', 'data-action': 'manage', 'data-id': ep.id, 'data-testid': 'endpoint-manage',
          'aria-controls': 'editor',
        }, 'Manage', hiddenName.cloneNode(true)),
        h('button', {
          type: 'button', 'data-action': 'toggle', 'data-id': ep.id, 'data-testid': 'endpoint-toggle',
        }, ep.enabled ? 'Disable' : 'Enable', hiddenName.cloneNode(true)),
        h('button', {
          type: 'button', 'data-action': 'recover', 'data-id': ep.id, 'data-testid': 'endpoint-recover',
          'aria-haspopup': 'dialog',
        }, 'Recover', hiddenName)));
      if (!banner) return [row];
      return [row, h('tr', { class: 'banner-row', 'data-testid': 'endpoint-banner-row', 'data-for': ep.id },
        h('td', { colspan: '4' }, banner))];
    });
    body.replaceChildren(...rows);

    if (focused) {
      const again = body.querySelector(
        `[data-id="${CSS.escape(focused.id)}"][data-action="${CSS.escape(focused.action)}"]`);
      if (again) again.focus();
      else focusEl($('editor-title'));
    }
  }

  function renderViewFilter() {
    const select = $('view-endpoint');
    const V = state.view;
    if (V.endpointId && !endpointById(V.endpointId)) setView('');
    const options = [['', 'All endpoints'], ...state.endpoints.map((ep) => [ep.id,
      endpointLabel(ep) + (ep.primary ? ' – primary' : '') + (ep.enabled ? '' : ' – disabled')])];
    const key = JSON.stringify(options);
    if (key !== V.optionsKey) {
      V.optionsKey = key;
      select.replaceChildren(...options.map(([value, label]) => h('option', { value }, label)));
    }
    select.value = V.endpointId;
    // one endpoint: "all" and "that one" are the same view, so the choice would only be noise
    show($('view-bar'), state.endpoints.length > 1 || V.endpointId !== '');
  }

  /** Show deliveries to one endpoint ('' = all) in the statistics, the chart and the log. */
  function setView(endpointId) {
    const V = state.view;
    if (V.endpointId === endpointId) return;
    V.endpointId = endpointId;
    $('view-endpoint').value = endpointId;
    closeDetail(false);
    state.logs.offset = 0;
    state.logs.key = '';
    state.stats.key = '';
    state.chart.key = '';
    refreshData({ logs: true, stats: true, chart: true, detail: false });
  }

  /** The endpoint query parameter for the log, statistics and chart requests. */
  function viewParam(first) {
    const id = state.view.endpointId;
    return id ? `${first ? '?' : '&'}endpointId=${encodeURIComponent(id)}` : '';
  }

  /** A view request failed; a 404 means the chosen endpoint is gone, so refresh the list
   * (which goes back to all endpoints) instead of showing an error. */
  function viewFailed(source, err) {
    if (err instanceof ApiError && err.status === 404 && state.view.endpointId) {
      loadEndpoints(false);
      return;
    }
    reportError(source, err);
  }

  /* ------------------------------------------------------------ editor */

  function selectEndpoint(id, focusTarget) {
    state.selectedId = id;
    state.returnId = null;
    hideSecret();
    closeConfirm('regenerate');
    closeConfirm('delete');
    setStatus($('config-status'), '');
    setStatus($('test-result'), '');
    setStatus($('endpoints-status'), '');
    renderEndpointRows();
    fillForm();
    if (focusTarget) focusEl(focusTarget);
  }

  function startNewEndpoint() {
    const from = state.selectedId;
    selectEndpoint(null, null);
    state.returnId = from;
    renderEditorChrome();
    focusEl($('config-url'));
  }

  function cancelNewEndpoint() {
    const back = state.returnId && endpointById(state.returnId) ? state.returnId : defaultEndpointId();
    selectEndpoint(back, $('editor-title'));
  }

  /** Put the selected endpoint (or a blank new one) into the form. */
  function fillForm() {
    const ep = selectedEndpoint();
    clearFieldErrors();
    $('config-url').value = ep ? ep.url || '' : '';
    $('config-description').value = ep ? ep.description || '' : '';
    $('config-enabled').checked = ep ? !!ep.enabled : true;
    // a new endpoint starts with every event, like the API's default
    renderEventCheckboxes(ep ? ep.enabledEvents || [] : state.availableEvents);
    renderHeaderRows(ep ? Object.entries(ep.headers || {}) : []);
    $('config-rate-limit').value = ep && ep.rateLimit !== null && ep.rateLimit !== undefined ? String(ep.rateLimit) : '';
    renderEditorChrome();
  }

  /** Everything around the form that depends on which endpoint it shows. */
  function renderEditorChrome() {
    const ep = selectedEndpoint();
    const any = state.endpoints.length > 0;
    show($('editor'), state.endpointsLoaded);
    setText($('editor-title'), ep ? 'Edit endpoint' : (any ? 'New endpoint' : 'Your first endpoint'));
    show($('endpoint-add'), any && !!ep);
    show($('editor-cancel'), !ep && any);
    show($('config-actions'), !!ep);
    if (!ep) {
      closeConfirm('regenerate');
      closeConfirm('delete');
    }

    const meta = $('config-meta');
    meta.replaceChildren();
    $('editor-banner').replaceChildren();
    if (ep) {
      const parts = [];
      if (ep.primary) parts.push(h('span', { class: 'badge primary' }, 'Primary'), ' ');
      if (ep.createdAt) parts.push('Created ', timeEl(ep.createdAt));
      if (ep.updatedAt) parts.push(ep.createdAt ? ' · updated ' : 'Updated ', timeEl(ep.updatedAt));
      if (!ep.enabled) parts.push(' · ', h('strong', null, 'Disabled'));
      meta.append(...parts);
      const banner = disabledBanner(ep);
      if (banner) banner.setAttribute('data-testid', 'editor-disabled-banner');
      $('editor-banner').replaceChildren(...(banner ? [banner] : []));
      setText($('delete-question'),
        `Delete the endpoint ${endpointLabel(ep)}? No more events will be sent to it; its delivery log stays.`);
    }
  }

  function renderEventCheckboxes(selected) {
    const list = $('event-list');
    const chosen = new Set(selected);
    const names = state.availableEvents.slice();
    for (const e of selected) if (!names.includes(e)) names.push(e);
    const items = names.map((name) => {
      const id = `event-${name}`;
      const unavailable = !state.availableEvents.includes(name);
      return h('div', { class: 'event-item' },
        h('input', {
          type: 'checkbox', id, value: name, 'data-testid': id, name: 'enabledEvents',
          checked: chosen.has(name),
        }),
        h('label', { for: id }, name, unavailable ? h('span', { class: 'unavailable' }, ' (no longer available)') : null));
    });
    if (!items.length) items.push(h('p', { class: 'muted small' }, 'The server offers no events.'));
    list.replaceChildren(...items);
  }

  function selectedEvents() {
    return [...$('event-list').querySelectorAll('input[type="checkbox"]')]
      .filter((cb) => cb.checked).map((cb) => cb.value);
  }

  /* ----------------------------------------------------------- headers */

  let headerSeq = 0;

  function renderHeaderRows(pairs) {
    $('header-rows').replaceChildren();
    for (const [name, value] of pairs) addHeaderRow(name, value);
    numberHeaderRows();
  }

  function addHeaderRow(name, value) {
    const n = ++headerSeq;
    const row = h('div', { class: 'header-row', 'data-testid': 'header-row' },
      h('label', { class: 'visually-hidden', for: `header-name-${n}`, 'data-role': 'name-label' }),
      h('input', {
        type: 'text', id: `header-name-${n}`, class: 'header-name', 'data-testid': 'header-name',
        autocomplete: 'off', spellcheck: 'false', placeholder: 'X-Api-Key',
      }),
      h('label', { class: 'visually-hidden', for: `header-value-${n}`, 'data-role': 'value-label' }),
      h('input', {
        type: 'text', id: `header-value-${n}`, class: 'header-value', 'data-testid': 'header-value',
        autocomplete: 'off', spellcheck: 'false',
      }),
      h('button', { type: 'button', class: 'link', 'data-testid': 'header-remove' }, 'Remove',
        h('span', { class: 'visually-hidden', 'data-role': 'remove-suffix' })));
    row.querySelector('.header-name').value = name || '';
    row.querySelector('.header-value').value = value || '';
    $('header-rows').append(row);
    return row;
  }

  /** Labels say "Header 2 name" etc., so they stay right after a row is removed. */
  function numberHeaderRows() {
    const rows = [...$('header-rows').children];
    rows.forEach((row, i) => {
      setText(row.querySelector('[data-role="name-label"]'), `Header ${i + 1} name`);
      setText(row.querySelector('[data-role="value-label"]'), `Header ${i + 1} value`);
      setText(row.querySelector('[data-role="remove-suffix"]'), ` header ${i + 1}`);
    });
    show($('header-grid'), rows.length > 0);
  }

  function removeHeaderRow(row) {
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    numberHeaderRows();
    focusEl(next ? next.querySelector('.header-name') : $('header-add'));
  }

  /** The header rows as an object; rows left completely empty are ignored. */
  function collectHeaders() {
    const headers = {};
    for (const row of $('header-rows').children) {
      const name = row.querySelector('.header-name').value.trim();
      const value = row.querySelector('.header-value').value.trim();
      if (!name && !value) continue;
      headers[name] = value; // an empty name is sent as is, and the API says what is wrong
    }
    return headers;
  }

  /** '' means no limit; anything that is not a whole number goes to the API to be judged. */
  function rateLimitValue() {
    const raw = $('config-rate-limit').value.trim();
    if (!raw) return null;
    return /^\d+$/.test(raw) ? Number(raw) : raw;
  }

  /* -------------------------------------------------------- saving */

  const FIELD_INPUT = {
    url: () => $('config-url'),
    description: () => $('config-description'),
    enabled: () => $('config-enabled'),
    enabledEvents: () => $('event-list').querySelector('input') || $('event-list'),
    rateLimit: () => $('config-rate-limit'),
  };

  function clearFieldErrors() {
    for (const f of Object.keys(FIELD_INPUT)) {
      setText($(`field-error-${f}`), '');
      FIELD_INPUT[f]().removeAttribute('aria-invalid');
    }
    $('field-error-headers').replaceChildren();
    for (const input of $('header-rows').querySelectorAll('input')) input.removeAttribute('aria-invalid');
    $('form-error').replaceChildren();
    document.querySelector('fieldset.events').classList.remove('invalid');
    $('headers-fieldset').classList.remove('invalid');
  }

  /** Put each of the API's field messages next to its field; the rest next to the form. */
  function showFieldErrors(fields) {
    let first = null;
    const headerLines = [];
    const other = [];
    for (const [field, raw] of Object.entries(fields)) {
      const message = String(raw);
      if (field === 'headers' || field.startsWith('headers.')) {
        const name = field.slice('headers.'.length);
        headerLines.push(field === 'headers' ? message : `${name || '(empty name)'}: ${message}`);
        const row = [...$('header-rows').children]
          .find((r) => r.querySelector('.header-name').value.trim() === name);
        const input = row ? row.querySelector('.header-name') : null;
        if (input) input.setAttribute('aria-invalid', 'true');
        if (!first) first = input || $('header-rows').querySelector('input') || $('header-add');
        continue;
      }
      if (!FIELD_INPUT[field]) {
        other.push(`${field}: ${message}`);
        continue;
      }
      setText($(`field-error-${field}`), message);
      if (field === 'enabledEvents') document.querySelector('fieldset.events').classList.add('invalid');
      else FIELD_INPUT[field]().setAttribute('aria-invalid', 'true');
      if (!first) first = FIELD_INPUT[field]();
    }
    if (headerLines.length) {
      $('field-error-headers').replaceChildren(...headerLines.map((line) => h('p', null, line)));
      $('headers-fieldset').classList.add('invalid');
    }
    if (other.length) $('form-error').replaceChildren(...other.map((line) => h('p', null, line)));
    return first;
  }

  async function saveConfig(ev) {
    ev.preventDefault();
    const btn = $('config-save');
    if (btn.disabled) return;
    clearFieldErrors();
    setStatus($('config-status'), 'Saving…');
    btn.disabled = true;
    const editing = selectedEndpoint();
    const body = {
      url: $('config-url').value.trim(),
      description: $('config-description').value.trim(),
      enabled: $('config-enabled').checked,
      enabledEvents: selectedEvents(),
      headers: collectHeaders(),
      rateLimit: rateLimitValue(),
    };
    try {
      if (editing) {
        const d = await api('PATCH', endpointPath(editing.id), body);
        putEndpoint(d.endpoint);
        renderEndpoints();
        if (state.selectedId === editing.id) fillForm();
        setStatus($('config-status'), 'Webhook configuration saved successfully', 'ok');
      } else {
        const first = state.endpoints.length === 0;
        const d = await api('POST', `${API}/endpoints`, body);
        putEndpoint(d.endpoint);
        selectEndpoint(d.endpoint.id, null);
        renderEndpoints();
        setStatus($('config-status'), 'Webhook configuration saved successfully', 'ok');
        showSecret(d.secret, null, first ? 'Webhook created. This is your signing secret:'
          : 'Endpoint created. This is its signing secret:', d.endpoint, true);
      }
    } catch (err) {
      if (err instanceof ApiError && err.silent) return;
      if (err instanceof ApiError && err.status === 422 && err.fields) {
        const first = showFieldErrors(err.fields);
        setStatus($('config-status'), `Not saved: ${err.message}`, 'bad');
        if (first) focusEl(first);
      } else {
        setStatus($('config-status'), `Not saved: ${err.message}`, 'bad');
        if (err.status === 404) loadEndpoints(false);
      }
    } finally {
      btn.disabled = false;
    }
  }

  async function toggleEndpoint(id) {
    const ep = endpointById(id);
    if (!ep) return;
    const enabled = !ep.enabled;
    const status = $('endpoints-status');
    try {
      const d = await api('PATCH', endpointPath(id), { enabled });
      applyEndpoint(d.endpoint);
      setStatus(status, enabled
        ? `Enabled ${endpointLabel(d.endpoint)}: events are sent to it again.`
        : `Disabled ${endpointLabel(d.endpoint)}: no events are sent to it until you enable it.`, 'ok');
    } catch (err) {
      if (err instanceof ApiError && err.silent) return;
      setStatus(status, `Could not ${enabled ? 'enable' : 'disable'} ${endpointLabel(ep)}: ${err.message}`, 'bad');
      if (err.status === 404) loadEndpoints(false);
    }
  }

  /** Show the server's copy of one endpoint; in the form only its on/off state changes, so
   * what the user typed stays. */
  function applyEndpoint(ep) {
    putEndpoint(ep);
    renderEndpoints();
    if (state.selectedId === ep.id) {
      $('config-enabled').checked = !!ep.enabled;
      renderEditorChrome();
    }
  }

  /** Fetch one endpoint again (a successful test switches one hookline had disabled back on). */
  async function reloadEndpoint(id) {
    try {
      const d = await api('GET', endpointPath(id));
      applyEndpoint(d.endpoint);
    } catch (err) {
      if (!(err instanceof ApiError && err.silent)) loadEndpoints(false);
    }
  }

  /** Re-enable an endpoint from its disabled banner; the banner goes with the reason. */
  async function reenableEndpoint(id, btn) {
    const ep = endpointById(id);
    if (!ep) return;
    const status = $('endpoints-status');
    const inEditor = $('editor-banner').contains(btn);
    btn.disabled = true;
    try {
      const d = await api('PATCH', endpointPath(id), { enabled: true });
      clearError('reenable');
      applyEndpoint(d.endpoint);
      setStatus(status, `Re-enabled ${endpointLabel(d.endpoint)}: events are sent to it again.`, 'ok');
      // the banner (and its button) is gone: keep the keyboard near where it was
      const toggle = $('endpoint-rows').querySelector(`[data-id="${CSS.escape(id)}"][data-action="toggle"]`);
      focusEl(inEditor ? $('editor-title') : toggle);
    } catch (err) {
      if (err instanceof ApiError && err.silent) return;
      btn.disabled = false;
      setStatus(status, `Could not re-enable ${endpointLabel(ep)}: ${err.message}`, 'bad');
      if (err.status === 404) loadEndpoints(false);
    }
  }

  /* ---------------------------------------------------------- recover */

  const TASK_FINAL = new Set(['succeeded', 'failed']);

  /** A datetime-local input's value for a Date, in the browser's time zone. */
  function localInputValue(d) {
    const pad = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`
      + `T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function clearRecoverErrors() {
    for (const f of ['since', 'until']) {
      setText($(`field-error-${f}`), '');
      $(`recover-${f}`).removeAttribute('aria-invalid');
    }
    $('recover-error').replaceChildren();
  }

  function openRecover(id, trigger) {
    const ep = endpointById(id);
    if (!ep) return;
    const R = state.recover;
    const dialog = $('recover-dialog');
    if (R.endpointId !== id) {
      // a new form; a recovery still running for another endpoint carries on, and its
      // outcome shows under the endpoint list
      R.taskId = null;
      R.previous = false;
      clearRecoverErrors();
      $('recover-since').value = localInputValue(new Date(Date.now() - 24 * 3600 * 1000));
      $('recover-until').value = '';
      show($('recover-progress-box'), false);
      setStatus($('recover-status'), '');
      setText($('recover-announce'), '');
      $('recover-start').disabled = false;
    }
    R.endpointId = id;
    R.returnFocus = trigger || null;
    $('recover-for').replaceChildren('Endpoint: ', h('code', null, ep.url),
      ep.description ? ` (${ep.description})` : '');
    if (!dialog.open) dialog.showModal();
    focusEl($('recover-start').disabled ? $('recover-close') : $('recover-since'));
    if (!R.taskId) showLatestTask(ep);
  }

  /** The endpoint's latest recovery (one started before a reload, say), followed if it runs. */
  async function showLatestTask(ep) {
    const R = state.recover;
    let task;
    try {
      const d = await api('GET', `${API}/tasks?endpointId=${encodeURIComponent(ep.id)}&limit=1`);
      task = Array.isArray(d.tasks) ? d.tasks[0] : null;
    } catch (_) {
      return; // the form works without it
    }
    // nothing to show, another endpoint's form by now, or a recovery being started here
    if (!task || R.endpointId !== ep.id || R.taskId || $('recover-start').disabled) return;
    R.taskId = task.id;
    R.previous = true;
    renderTask(task);
    if (!TASK_FINAL.has(task.status)) watchTask(task.id, ep);
  }

  function closeRecover(returnFocus) {
    const dialog = $('recover-dialog');
    if (dialog.open) dialog.close();
    const R = state.recover;
    if (returnFocus && R.returnFocus && R.returnFocus.isConnected) focusEl(R.returnFocus);
    else if (returnFocus && R.endpointId) {
      focusEl($('endpoint-rows').querySelector(`[data-id="${CSS.escape(R.endpointId)}"][data-action="recover"]`));
    }
  }

  /** The window as the API wants it (ISO 8601 UTC), or null after showing what is wrong. */
  function recoverWindow() {
    const body = {};
    for (const f of ['since', 'until']) {
      const raw = $(`recover-${f}`).value;
      if (!raw) {
        if (f === 'since') {
          setText($('field-error-since'), 'Choose when the window starts.');
          $('recover-since').setAttribute('aria-invalid', 'true');
          focusEl($('recover-since'));
          return null;
        }
        continue;
      }
      const d = new Date(raw); // no offset in a datetime-local value: the browser's local time
      if (Number.isNaN(d.getTime())) {
        setText($(`field-error-${f}`), 'Enter a date and time.');
        $(`recover-${f}`).setAttribute('aria-invalid', 'true');
        focusEl($(`recover-${f}`));
        return null;
      }
      body[f] = d.toISOString();
    }
    return body;
  }

  async function startRecover() {
    const R = state.recover;
    const ep = endpointById(R.endpointId);
    const btn = $('recover-start');
    if (!ep || btn.disabled) return;
    clearRecoverErrors();
    setText($('recover-announce'), '');
    const body = recoverWindow();
    if (!body) return;
    btn.disabled = true;
    R.previous = false;
    setStatus($('recover-status'), 'Starting the recovery…');
    try {
      const d = await api('POST', `${endpointPath(ep.id)}/recover`, body);
      const task = d.task || d;
      R.taskId = task.id;
      renderTask(task);
      watchTask(task.id, ep);
    } catch (err) {
      if (err instanceof ApiError && err.silent) return;
      btn.disabled = false;
      setStatus($('recover-status'), '');
      $('recover-error').replaceChildren(h('p', null, `Not started: ${err.message}`));
      let first = null;
      for (const [field, message] of Object.entries(err.fields || {})) {
        if (field !== 'since' && field !== 'until') continue;
        setText($(`field-error-${field}`), String(message));
        $(`recover-${field}`).setAttribute('aria-invalid', 'true');
        first = first || $(`recover-${field}`);
      }
      if (first) focusEl(first);
      if (err.status === 404) loadEndpoints(false);
    }
  }

  function taskText(task) {
    const total = Number(task.total) || 0;
    const done = Number(task.done) || 0;
    if (task.status === 'succeeded') {
      return total
        ? `Done: ${done} of ${plural(total, 'failed delivery', 'failed deliveries')} queued to be sent again.`
        : 'Done: no failed deliveries in this window.';
    }
    if (task.status === 'failed') {
      return `Recovery failed after ${done} of ${total} deliveries: ${task.error || 'no reason given'}.`;
    }
    if (task.status === 'queued') return 'Waiting for a worker to start the recovery…';
    return `Recovering: ${done} of ${plural(total, 'delivery', 'deliveries')} done…`;
  }

  /** Show a task's progress in the dialog (done/total on a progress bar). */
  function renderTask(task) {
    const total = Number(task.total) || 0;
    const done = Number(task.done) || 0;
    const final = TASK_FINAL.has(task.status);
    const bar = $('recover-progress');
    bar.max = Math.max(total, 1);
    bar.value = total ? Math.min(done, total) : (final ? 1 : 0);
    bar.setAttribute('aria-valuetext', total ? `${done} of ${total}` : (final ? 'done' : 'starting'));
    bar.dataset.done = String(done);
    bar.dataset.total = String(total);
    bar.dataset.state = task.status || '';
    show($('recover-progress-box'), true);
    const R = state.recover;
    const started = parseDate(task.createdAt);
    const prefix = R.previous && R.taskId === task.id && started
      ? `Last recovery, started ${dateTimeFmt.format(started)}: ` : '';
    setStatus($('recover-status'), prefix + taskText(task),
      task.status === 'succeeded' ? 'ok' : task.status === 'failed' ? 'bad' : null);
    setText($('recover-announce'), final ? taskText(task) : 'Recovery started.');
    $('recover-start').disabled = !final;
  }

  /** Poll a recovery until it finishes; the dialog shows it while it is the one on display. */
  async function watchTask(taskId, ep) {
    const session = state.session;
    const R = state.recover;
    if (R.watching.has(taskId)) return;
    R.watching.add(taskId);
    try {
      await followTask(taskId, ep, session);
    } finally {
      R.watching.delete(taskId);
    }
  }

  async function followTask(taskId, ep, session) {
    const R = state.recover;
    let failures = 0;
    for (;;) {
      await sleep(FOLLOW_MS);
      if (session !== state.session) return;
      let task;
      try {
        const d = await api('GET', `${API}/tasks/${encodeURIComponent(taskId)}`);
        task = d.task || d;
        failures = 0;
      } catch (err) {
        if (err instanceof ApiError && err.silent) return;
        failures += 1;
        if (R.taskId === taskId) {
          setStatus($('recover-status'), `Could not read the recovery's progress: ${err.message}`, 'bad');
        }
        if (err.status === 404 || failures >= 10) return;
        continue;
      }
      const shown = R.taskId === taskId && $('recover-dialog').open;
      if (R.taskId === taskId) renderTask(task);
      if (TASK_FINAL.has(task.status)) {
        if (!shown) {
          setStatus($('endpoints-status'), `Recovery for ${endpointLabel(ep)}: ${taskText(task)}`,
            task.status === 'succeeded' ? 'ok' : 'bad');
        }
        refreshData({ logs: true, stats: true, chart: true, detail: true });
        return;
      }
    }
  }

  /* ----------------------------------------------------------- secret */

  // What a receiver holding the replaced secret can still verify (docs/receiving.md, "Secret
  // rotation"): webhook-signature carries one signature per secret in use, X-Webhook-Signature
  // only the newest.
  function rotationNote(previousExpiresAt) {
    if (!previousExpiresAt) {
      return ['The old secret no longer signs deliveries: receivers need the new secret now.'];
    }
    return [
      'Until ', timeEl(previousExpiresAt), ', each delivery\'s ', h('code', null, 'webhook-signature'),
      ' header also carries a signature made with the old secret: a receiver that verifies that header',
      ' keeps working with the old secret until then, and needs the new one after. ',
      h('code', null, 'X-Webhook-Signature'), ' is signed with the new secret only, starting now.',
    ];
  }

  function showSecret(secret, oldSecretNote, message, endpoint, moveFocus) {
    setText($('new-secret'), secret);
    setText($('secret-message'), message || '');
    $('secret-for').replaceChildren('For ', h('code', null, endpoint.url),
      endpoint.description ? ` (${endpoint.description})` : '');
    setStatus($('copy-status'), '');
    const old = $('secret-old-until');
    old.replaceChildren();
    if (oldSecretNote) {
      old.append(...oldSecretNote);
      show(old, true);
    } else {
      show(old, false);
    }
    show($('secret-panel'), true);
    if (moveFocus) focusEl($('secret-title'));
  }

  function hideSecret() {
    setText($('new-secret'), '');
    setText($('secret-message'), '');
    $('secret-for').replaceChildren();
    setStatus($('copy-status'), '');
    $('secret-old-until').replaceChildren();
    show($('secret-old-until'), false);
    show($('secret-panel'), false);
  }

  async function copySecret() {
    const secret = $('new-secret').textContent;
    if (!secret) return;
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(secret);
        ok = true;
      }
    } catch (_) {
      ok = false;
    }
    if (!ok) {
      const ta = h('textarea', { readonly: true, 'aria-hidden': 'true', class: 'visually-hidden' });
      ta.value = secret;
      document.body.append(ta);
      ta.select();
      try {
        ok = document.execCommand('copy');
      } catch (_) {
        ok = false;
      }
      ta.remove();
      $('copy-secret').focus();
    }
    if (ok) {
      setStatus($('copy-status'), 'Secret copied to the clipboard.', 'ok');
    } else {
      const range = document.createRange();
      range.selectNodeContents($('new-secret'));
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      setStatus($('copy-status'), 'Copying is blocked here; the secret is selected, press Ctrl+C (⌘C) to copy it.');
    }
  }

  /* -------------------------------------------------- test / regen / delete */

  async function testSend() {
    const btn = $('test-send');
    const ep = selectedEndpoint();
    if (!ep || btn.getAttribute('aria-busy') === 'true') return;
    btn.setAttribute('aria-busy', 'true');
    setStatus($('test-result'), 'Sending test webhook…');
    try {
      const d = await api('POST', `${endpointPath(ep.id)}/test`);
      clearError('test');
      const code = d.statusCode === null || d.statusCode === undefined ? null : d.statusCode;
      let text;
      if (d.success) {
        text = `${d.message || 'Test webhook sent successfully'}${code !== null ? ` (HTTP ${code})` : ''}.`;
      } else {
        text = d.error || 'Failed to deliver test webhook';
        if (d.details) text += `: ${d.details}`;
        text += code !== null ? ` (HTTP ${code}).` : ' (no HTTP response).';
      }
      if (state.selectedId !== ep.id) return; // the user moved on to another endpoint
      const result = $('test-result');
      setStatus(result, text, d.success ? 'ok' : 'bad');
      if (d.deliveryId) {
        result.append(' Delivery ID: ',
          h('code', { 'data-testid': 'test-delivery-id' }, String(d.deliveryId)));
      }
      // a test that gets through switches an endpoint hookline had disabled back on
      if (d.success && !ep.enabled) reloadEndpoint(ep.id);
      refreshData({ logs: true, stats: true, chart: true, detail: false });
    } catch (err) {
      if (err instanceof ApiError && err.silent) return;
      setStatus($('test-result'), 'Test webhook not sent.', 'bad');
      reportError('test', err);
      if (err.status === 404) loadEndpoints(false);
    } finally {
      btn.removeAttribute('aria-busy');
    }
  }

  function openConfirm(kind) {
    const other = kind === 'regenerate' ? 'delete' : 'regenerate';
    closeConfirm(other);
    show($(`${kind}-box`), true);
    $(kind === 'delete' ? 'delete-config' : 'regenerate').setAttribute('aria-expanded', 'true');
    focusEl($(`${kind}-cancel`));
  }

  function closeConfirm(kind, returnFocus) {
    const box = $(`${kind}-box`);
    const trigger = $(kind === 'delete' ? 'delete-config' : 'regenerate');
    const wasOpen = !box.hidden;
    show(box, false);
    trigger.setAttribute('aria-expanded', 'false');
    if (returnFocus && wasOpen) focusEl(trigger);
  }

  async function regenerate() {
    closeConfirm('regenerate');
    const ep = selectedEndpoint();
    if (!ep) return;
    const btn = $('regenerate');
    btn.disabled = true;
    try {
      const d = await api('POST', `${endpointPath(ep.id)}/regenerate-secret`);
      clearError('regenerate');
      if (state.selectedId !== ep.id) selectEndpoint(ep.id, null);
      showSecret(d.secret, rotationNote(d.previousSecretExpiresAt),
        d.message || 'Webhook secret regenerated successfully', ep, true);
    } catch (err) {
      if (err instanceof ApiError && err.silent) return;
      reportError('regenerate', err);
      if (err.status === 404) loadEndpoints(false);
    } finally {
      btn.disabled = false;
      if (document.activeElement === document.body && !btn.closest('[hidden]')) btn.focus();
    }
  }

  async function deleteEndpoint() {
    closeConfirm('delete');
    const ep = selectedEndpoint();
    if (!ep) return;
    const btn = $('delete-config');
    btn.disabled = true;
    try {
      await api('DELETE', endpointPath(ep.id));
      clearError('delete');
      state.endpoints = state.endpoints.filter((e) => e.id !== ep.id);
      selectEndpoint(defaultEndpointId(), null);
      renderEndpoints();
      setStatus($('endpoints-status'),
        `Deleted the endpoint ${endpointLabel(ep)}. Its delivery log stays.`, 'ok');
      focusEl($('config-title'));
    } catch (err) {
      if (err instanceof ApiError && err.silent) return;
      reportError('delete', err);
      if (err.status === 404) loadEndpoints(false);
    } finally {
      btn.disabled = false;
      if (document.activeElement === document.body && !btn.closest('[hidden]')) btn.focus();
    }
  }

  /* ------------------------------------------------------------- stats */

  async function loadStats() {
    const gen = ++state.gen.stats;
    state.stats.inflight += 1;
    try {
      const d = await api('GET', `${API}/stats${viewParam(true)}`);
      if (gen !== state.gen.stats) return;
      clearError('stats');
      renderStats(d);
    } catch (err) {
      if (gen === state.gen.stats) viewFailed('stats', err);
    } finally {
      state.stats.inflight -= 1;
    }
  }

  function renderStats(d) {
    const key = JSON.stringify(d);
    if (key === state.stats.key) return;
    state.stats.key = key;
    setText($('stats-total'), numText(d.total));
    setText($('stats-successful'), numText(d.successful));
    setText($('stats-failed'), numText(d.failed));
    setText($('stats-pending'), numText(d.pending));
    setText($('stats-success-rate'),
      d.successRate === null || d.successRate === undefined ? '–' : `${d.successRate}%`);
    setText($('stats-average-attempts'), numText(d.averageAttempts));

    const by = d.byEvent && typeof d.byEvent === 'object' ? d.byEvent : {};
    const names = Object.keys(by).sort();
    names.forEach((n) => state.knownEvents.add(n));
    renderEventFilter();
    const box = $('stats-by-event');
    if (!names.length) {
      box.replaceChildren(h('p', { class: 'muted small' },
        'No deliveries yet. Send a test webhook or publish an event to see numbers per event.'));
      return;
    }
    const rows = names.map((n) => {
      const e = by[n] || {};
      return h('tr', { 'data-event': n },
        h('th', { scope: 'row' }, eventCode(n)),
        h('td', { class: 'num' }, numText(e.total)),
        h('td', { class: 'num' }, numText(e.successful)),
        h('td', { class: 'num' }, numText(e.failed)));
    });
    box.replaceChildren(h('table', null,
      h('caption', { class: 'visually-hidden' }, 'Deliveries by event'),
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, 'Event'),
        h('th', { scope: 'col', class: 'num' }, 'Total'),
        h('th', { scope: 'col', class: 'num' }, 'Successful'),
        h('th', { scope: 'col', class: 'num' }, 'Failed'))),
      h('tbody', null, ...rows)));
  }

  /* ------------------------------------------------------------- chart */

  const WINDOW_LABEL = { '24h': 'last 24 hours', '7d': 'last 7 days', '30d': 'last 30 days' };

  function bucketLabel(seconds) {
    if (!seconds) return 'period';
    if (seconds % 86400 === 0) return seconds === 86400 ? 'day' : `${seconds / 86400} days`;
    if (seconds % 3600 === 0) return seconds === 3600 ? 'hour' : `${seconds / 3600} hours`;
    if (seconds % 60 === 0) return `${seconds / 60} minutes`;
    return `${seconds} seconds`;
  }

  async function loadChart() {
    const gen = ++state.gen.chart;
    const win = state.chart.window;
    try {
      const d = await api('GET', `${API}/stats/timeseries?window=${encodeURIComponent(win)}${viewParam(false)}`);
      if (gen !== state.gen.chart) return;
      clearError('chart');
      const key = JSON.stringify(d);
      if (key === state.chart.key) return;
      state.chart.key = key;
      state.chart.data = d;
      renderChart();
    } catch (err) {
      if (gen === state.gen.chart) viewFailed('chart', err);
    }
  }

  function niceScale(max) {
    if (!(max > 0)) return { max: 4, step: 1 };
    const raw = max / 4;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / mag;
    let step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
    step = Math.max(1, Math.round(step));
    return { max: Math.ceil(max / step) * step, step };
  }

  function renderChart() {
    const d = state.chart.data;
    const box = $('chart-box');
    if (!d || !Array.isArray(d.buckets)) {
      box.replaceChildren();
      return;
    }
    const buckets = d.buckets;
    const n = buckets.length;
    const win = d.window || state.chart.window;
    const bucketSec = Number(d.bucketSeconds) || 0;
    const W = Math.max(280, Math.floor(box.clientWidth || 600));
    const H = W < 520 ? 220 : 260;
    const m = { top: 14, right: 12, bottom: 46, left: 50 };
    const pw = W - m.left - m.right;
    const ph = H - m.top - m.bottom;
    let totOk = 0;
    let totBad = 0;
    let peak = null;
    let maxTotal = 0;
    for (const b of buckets) {
      const ok = Number(b.successful) || 0;
      const bad = Number(b.failed) || 0;
      totOk += ok;
      totBad += bad;
      if (ok + bad > maxTotal) {
        maxTotal = ok + bad;
        peak = b;
      }
    }
    const scale = niceScale(maxTotal);
    const y = (v) => m.top + ph - (v / scale.max) * ph;

    const summaryText = `${WINDOW_LABEL[win] ? WINDOW_LABEL[win][0].toUpperCase() + WINDOW_LABEL[win].slice(1) : win}`
      + ` (one bar per ${bucketLabel(bucketSec)}): ${plural(totOk, 'successful delivery', 'successful deliveries')}`
      + ` and ${plural(totBad, 'failed delivery', 'failed deliveries')}.`
      + (peak && maxTotal > 0
        ? ` Busiest period: ${plural(maxTotal, 'delivery', 'deliveries')} starting ${dateTimeShortFmt.format(parseDate(peak.start) || new Date(0))}.`
        : ' No deliveries in this period.');

    const svg = s('svg', {
      width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', 'data-testid': 'chart',
      'aria-labelledby': 'chart-svg-title', 'aria-describedby': 'chart-summary',
    });
    svg.append(s('title', { id: 'chart-svg-title' },
      `Bar chart of successful and failed deliveries, ${WINDOW_LABEL[win] || win}`));

    // y grid + ticks
    for (let v = 0; v <= scale.max; v += scale.step) {
      const yy = Math.round(y(v)) + 0.5;
      svg.append(s('line', { class: v === 0 ? 'axis-line' : 'grid-line', x1: m.left, x2: W - m.right, y1: yy, y2: yy }));
      svg.append(s('text', { x: m.left - 6, y: yy + 4, 'text-anchor': 'end' }, String(v)));
    }
    svg.append(s('text', {
      class: 'axis-title', transform: `translate(13 ${m.top + ph / 2}) rotate(-90)`, 'text-anchor': 'middle',
    }, 'Deliveries'));

    // bars
    const slot = n ? pw / n : pw;
    const barW = Math.max(1, Math.min(48, slot * 0.72));
    buckets.forEach((b, i) => {
      const ok = Number(b.successful) || 0;
      const bad = Number(b.failed) || 0;
      const x = m.left + i * slot + (slot - barW) / 2;
      const start = parseDate(b.start);
      const label = start ? dateTimeShortFmt.format(start) : String(b.start);
      const g = s('g', { class: 'bucket', 'data-start': b.start });
      g.append(s('title', null, `${label}: ${ok} successful, ${bad} failed`));
      if (ok > 0) {
        g.append(s('rect', { class: 'bar-ok', x: x.toFixed(1), y: y(ok).toFixed(1), width: barW.toFixed(1), height: (y(0) - y(ok)).toFixed(1) }));
      }
      if (bad > 0) {
        g.append(s('rect', { class: 'bar-bad', x: x.toFixed(1), y: y(ok + bad).toFixed(1), width: barW.toFixed(1), height: (y(ok) - y(ok + bad)).toFixed(1) }));
      }
      // invisible full-height hit area so the tooltip works on empty buckets too
      g.append(s('rect', { x: (m.left + i * slot).toFixed(1), y: m.top, width: slot.toFixed(1), height: ph, fill: 'transparent' }));
      svg.append(g);
    });

    // x labels: choose a step so labels don't collide
    const spanSec = n * bucketSec;
    const fmtFor = (k) => {
      if (k * bucketSec >= 86400 || spanSec > 2 * 86400) return { fmt: dateShortFmt, w: 52 };
      if (spanSec && spanSec <= 86400) return { fmt: timeShortFmt, w: 44 };
      return { fmt: dateTimeShortFmt, w: 96 };
    };
    let k = 1;
    let f = fmtFor(1);
    while (k < n && slot * k < f.w + 8) {
      k += 1;
      f = fmtFor(k);
    }
    // date-only labels: keep them a whole number of days apart
    const perDay = bucketSec > 0 && bucketSec < 86400 && 86400 % bucketSec === 0 ? 86400 / bucketSec : 1;
    if (f.fmt === dateShortFmt && perDay > 1) k = Math.ceil(k / perDay) * perDay;
    for (let i = 0; i < n; i += k) {
      const start = parseDate(buckets[i].start);
      if (!start) continue;
      const cx = m.left + i * slot + slot / 2;
      if (cx + f.w / 2 > W) continue;
      svg.append(s('line', { class: 'axis-line', x1: cx, x2: cx, y1: m.top + ph, y2: m.top + ph + 4 }));
      svg.append(s('text', { x: cx.toFixed(1), y: m.top + ph + 16, 'text-anchor': 'middle' }, f.fmt.format(start)));
    }
    svg.append(s('text', { class: 'axis-title', x: m.left + pw / 2, y: H - 6, 'text-anchor': 'middle' },
      'Time (your local time)'));

    if (maxTotal === 0) {
      svg.append(s('text', { class: 'no-data', x: m.left + pw / 2, y: m.top + ph / 2, 'text-anchor': 'middle' },
        'No deliveries in this period'));
    }

    box.replaceChildren(svg);
    setText($('chart-summary'), summaryText);

    // text alternative: data table
    const rows = buckets.map((b) => h('tr', null,
      h('th', { scope: 'row' }, timeEl(b.start, dateTimeShortFmt)),
      h('td', { class: 'num' }, String(Number(b.successful) || 0)),
      h('td', { class: 'num' }, String(Number(b.failed) || 0))));
    $('chart-table-wrap').replaceChildren(h('table', { 'data-testid': 'chart-table' },
      h('caption', { class: 'visually-hidden' }, `Deliveries per ${bucketLabel(bucketSec)}, ${WINDOW_LABEL[win] || win}`),
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, 'Period starting'),
        h('th', { scope: 'col', class: 'num' }, 'Successful'),
        h('th', { scope: 'col', class: 'num' }, 'Failed'))),
      h('tbody', null, ...rows)));
  }

  function setWindow(win) {
    if (!WINDOW_LABEL[win]) return;
    state.chart.window = win;
    state.chart.key = '';
    for (const b of document.querySelectorAll('[data-window]')) {
      b.setAttribute('aria-pressed', String(b.dataset.window === win));
    }
    loadChart();
  }

  /* -------------------------------------------------------------- logs */

  function renderEventFilter() {
    const sel = $('filter-event');
    const names = [...new Set([...state.availableEvents, ...state.knownEvents])];
    const current = [...sel.options].slice(1).map((o) => o.value);
    if (current.length === names.length && current.every((v, i) => v === names[i])) return;
    const value = sel.value;
    sel.replaceChildren(h('option', { value: '' }, 'All events'),
      ...names.map((n) => h('option', { value: n }, n)));
    sel.value = names.includes(value) ? value : '';
  }

  async function loadLogs() {
    const gen = ++state.gen.logs;
    const L = state.logs;
    const params = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(L.offset) });
    if (L.event) params.set('event', L.event);
    if (L.success) params.set('success', L.success);
    if (state.view.endpointId) params.set('endpointId', state.view.endpointId);
    L.inflight += 1;
    try {
      const d = await api('GET', `${API}/logs?${params}`);
      if (gen !== state.gen.logs) return;
      clearError('logs');
      const logs = Array.isArray(d.logs) ? d.logs : [];
      const total = d.pagination ? Number(d.pagination.total) || 0 : logs.length;
      if (!logs.length && L.offset > 0 && total > 0) {
        // the page we were on no longer exists: go to the last one
        L.offset = Math.floor((total - 1) / PAGE_SIZE) * PAGE_SIZE;
        loadLogs();
        return;
      }
      renderLogs(d, logs);
    } catch (err) {
      if (gen === state.gen.logs) viewFailed('logs', err);
    } finally {
      L.inflight -= 1;
    }
  }

  const STATUS_BADGE = {
    succeeded: ['ok', 'Succeeded'],
    failed: ['bad', 'Failed'],
    retrying: ['retrying', 'Retrying'],
    pending: ['pending', 'Pending'],
  };
  const FINISHED = new Set(['succeeded', 'failed']);

  /** Where a delivery is: the API's status (older servers: guessed from success/error). */
  function logStatus(log) {
    if (log.status) return String(log.status);
    if (log.success) return 'succeeded';
    return !log.deliveredAt && !log.error ? 'pending' : 'failed';
  }

  function resultBadge(log) {
    const status = logStatus(log);
    const [cls, text] = STATUS_BADGE[status] || ['pending', status];
    return h('span', { class: `badge ${cls}`, 'data-status': status }, text);
  }

  /** "Next attempt in 2 minutes" (exact time on hover) while another attempt is planned. */
  function nextAttemptEl(log) {
    if (FINISHED.has(logStatus(log)) || !parseDate(log.nextAttemptAt)) return null;
    return h('span', { class: 'next-attempt', 'data-testid': 'next-attempt' },
      'Next attempt ', relTimeEl(log.nextAttemptAt, 'next'));
  }

  /** How the last resend of this delivery went, next to its Resend button. */
  function resendNote(log) {
    const R = state.resend;
    if (!R || R.id !== log.id) return null;
    let text;
    let kind = null;
    if (R.error) {
      text = `Not resent: ${R.error}`;
      kind = 'bad';
    } else if (FINISHED.has(logStatus(log)) && Number(log.attempts) > R.attempts) {
      const ok = logStatus(log) === 'succeeded';
      text = ok ? 'Sent again: it succeeded.' : 'Sent again: it failed again.';
      kind = ok ? 'ok' : 'bad';
    } else {
      text = 'Queued to be sent again…';
    }
    return h('span', { class: `resend-note ${kind || ''}`.trim(), 'data-testid': 'resend-result' }, text);
  }

  /** Which endpoint a delivery went to: its name today, else the URL it was sent to. */
  function logEndpoint(log) {
    const ep = log.endpointId ? endpointById(log.endpointId) : null;
    return ep ? endpointName(ep) : log.url || '—';
  }

  function renderLogs(d, logs) {
    const L = state.logs;
    const names = state.endpoints.map((ep) => [ep.id, endpointName(ep)]);
    const R = state.resend;
    const key = JSON.stringify([L.offset, L.event, L.success, state.view.endpointId, names, d,
      R && [R.id, R.error]]);
    if (key === L.key) return;
    L.key = key;
    const p = d.pagination || {};
    L.total = Number(p.total) || 0;
    const hasMore = p.hasMore !== undefined ? !!p.hasMore : L.offset + logs.length < L.total;
    logs.forEach((l) => l.event && state.knownEvents.add(l.event));
    renderEventFilter();

    const body = $('logs-body');
    const active = document.activeElement;
    const activeRow = active && active.closest && body.contains(active) ? active.closest('tr.log-row') : null;
    const focusedId = activeRow ? activeRow.dataset.id : null;
    const focusedResend = !!(activeRow && active !== activeRow && active.dataset.action === 'resend');

    const rows = logs.map((log) => {
      const status = logStatus(log);
      const open = log.id === state.detail.id;
      const tr = h('tr', {
        'data-testid': 'log-row', 'data-id': log.id, tabindex: '0',
        'data-event': log.event, 'data-success': String(!!log.success), 'data-status': status,
        class: open ? 'log-row selected' : 'log-row', 'aria-expanded': String(open),
      },
      h('td', null, timeEl(log.createdAt)),
      h('td', null, eventCode(log.event)),
      h('td', { class: 'result-cell' }, resultBadge(log), nextAttemptEl(log)),
      h('td', { class: 'opt endpoint-col' }, logEndpoint(log)),
      h('td', { class: 'opt' }, log.statusCode === null || log.statusCode === undefined ? '—' : String(log.statusCode)),
      h('td', { class: 'opt num' }, numText(log.attempts)),
      h('td', { class: 'log-actions' },
        FINISHED.has(status)
          ? h('button', { type: 'button', 'data-action': 'resend', 'data-testid': 'resend' }, 'Resend',
            h('span', { class: 'visually-hidden' }, ` the ${log.event} delivery`))
          : null,
        resendNote(log)));
      return tr;
    });
    const detailFocus = state.detail.row && state.detail.row.contains(document.activeElement)
      ? document.activeElement : null;
    body.replaceChildren(...rows);
    placeDetail(detailFocus);

    const filtered = !!(L.event || L.success || state.view.endpointId);
    const empty = $('empty-logs');
    if (!logs.length) {
      empty.replaceChildren(...(filtered
        ? [h('p', null, 'No deliveries match these filters.'),
          h('p', null, state.view.endpointId
            ? 'Choose “All endpoints” above, “All events” and “Any result” to see every delivery.'
            : 'Choose “All events” and “Any result” to see every delivery.')]
        : [h('p', null, 'No deliveries yet.'),
          h('p', null, state.endpoints.length
            ? 'Press “Send test webhook” or publish an event, then press Refresh.'
            : 'Save a webhook URL above, then press “Send test webhook” to see your first delivery here.')]));
    }
    show(empty, !logs.length);
    show($('logs-wrap'), logs.length > 0);
    show($('logs-pager'), logs.length > 0 || L.offset > 0);

    setText($('logs-page-info'), logs.length
      ? `Showing ${L.offset + 1}–${L.offset + logs.length} of ${L.total}`
      : '');
    const prev = $('logs-prev');
    const next = $('logs-next');
    const prevHadFocus = document.activeElement === prev;
    const nextHadFocus = document.activeElement === next;
    prev.disabled = L.offset <= 0;
    next.disabled = !hasMore;
    if (prevHadFocus && prev.disabled && !next.disabled) next.focus();
    if (nextHadFocus && next.disabled && !prev.disabled) prev.focus();

    if (focusedId) {
      const again = body.querySelector(`tr[data-id="${CSS.escape(focusedId)}"]`);
      const button = again && focusedResend ? again.querySelector('[data-action="resend"]') : null;
      if (button) button.focus();
      else if (again) again.focus();
    }
  }

  function changeFilter() {
    closeDetail(false);
    state.logs.event = $('filter-event').value;
    state.logs.success = $('filter-success').value;
    state.logs.offset = 0;
    loadLogs();
  }

  function page(delta) {
    const L = state.logs;
    const next = Math.max(0, L.offset + delta * PAGE_SIZE);
    if (next === L.offset) return;
    closeDetail(false);
    L.offset = next;
    loadLogs();
  }

  /* ------------------------------------------------------------ detail */

  /** Put the open detail in a row right under its delivery (at the top of the log if the
   * delivery is no longer on this page), and give back the focus a re-render took from it. */
  function placeDetail(hadFocus) {
    const D = state.detail;
    if (!D.id) return;
    const panel = state.detailPanel;
    if (!D.row) {
      D.row = h('tr', { class: 'detail-row', 'data-testid': 'log-detail-row' }, h('td', { colspan: '7' }));
    }
    if (panel.parentNode !== D.row.firstChild) D.row.firstChild.append(panel);
    const body = $('logs-body');
    const anchor = body.querySelector(`tr.log-row[data-id="${CSS.escape(D.id)}"]`);
    if (anchor) anchor.after(D.row);
    else body.prepend(D.row);
    show($('detail-elsewhere'), !anchor);
    show(panel, true);
    if (hadFocus && hadFocus.isConnected && document.activeElement !== hadFocus) {
      hadFocus.focus({ preventScroll: true });
    }
  }

  /** Take the detail out of the log (hidden, where it started). */
  function parkDetail() {
    const D = state.detail;
    const panel = state.detailPanel;
    show(panel, false);
    $('dashboard-view').append(panel);
    if (D.row) D.row.remove();
    D.row = null;
  }

  async function openDetail(id, quiet) {
    if (!id) return;
    const D = state.detail;
    if (!quiet) {
      D.id = id;
      D.returnId = id;
      D.key = '';
      D.status = null;
      for (const tr of $('logs-body').querySelectorAll('tr.log-row')) {
        const open = tr.dataset.id === id;
        tr.classList.toggle('selected', open);
        tr.setAttribute('aria-expanded', String(open));
      }
      $('detail-body').replaceChildren(h('p', { class: 'muted' }, 'Loading delivery…'));
      placeDetail(null);
      focusEl($('detail-title'));
    }
    const gen = ++state.gen.detail;
    try {
      const d = await api('GET', `${API}/logs/${encodeURIComponent(id)}`);
      if (gen !== state.gen.detail || D.id !== id) return;
      clearError('detail');
      renderDetail(d.log || d);
    } catch (err) {
      if (gen !== state.gen.detail || D.id !== id) return;
      if (!quiet) $('detail-body').replaceChildren(h('p', { class: 'muted' }, 'This delivery could not be loaded.'));
      reportError('detail', err);
    }
  }

  /** The payload exactly as sent: the bytes the signature covers, not a reformatted copy. */
  function exactPayload(payload) {
    if (payload === null || payload === undefined) return '(no payload)';
    return typeof payload === 'string' ? payload : JSON.stringify(payload);
  }

  /** The payload indented for reading (numbers beyond 2^53 may lose digits here; the exact
   * bytes are shown apart). */
  function prettyPayload(payload) {
    const raw = exactPayload(payload);
    try {
      return JSON.stringify(JSON.parse(raw), null, 2);
    } catch (_) {
      return raw;
    }
  }

  const TRIGGER = { scheduled: 'Scheduled', manual: 'Manual (resend)', recovery: 'Recovery' };

  /** What came back (as text: an excerpt is never rendered as HTML) and the headers sent. */
  function attemptExtras(a) {
    let response;
    if (typeof a.responseExcerpt === 'string' && a.responseExcerpt !== '') {
      response = [h('p', { class: 'label' }, 'Response body (start)'),
        h('pre', { class: 'excerpt', 'data-testid': 'attempt-response' }, a.responseExcerpt)];
    } else {
      const none = a.statusCode === null || a.statusCode === undefined ? 'No response.' : 'Empty response body.';
      response = [h('p', { class: 'muted small', 'data-testid': 'attempt-response-none' }, none)];
    }
    let headers;
    const sent = a.requestHeaders && typeof a.requestHeaders === 'object' ? Object.entries(a.requestHeaders) : null;
    if (sent) {
      headers = h('details', { class: 'sent-headers', 'data-testid': 'attempt-headers' },
        h('summary', null, `Request headers sent (${sent.length})`),
        h('table', { class: 'header-table' },
          h('caption', { class: 'visually-hidden' }, `Headers of attempt ${numText(a.attempt)}`),
          h('tbody', null, ...sent.map(([name, value]) => h('tr', null,
            h('th', { scope: 'row' }, h('code', null, name)),
            h('td', null, h('code', null, String(value))))))));
    } else {
      headers = h('p', { class: 'muted small' },
        'Request headers: not recorded (nothing was sent, or the attempt predates their recording).');
    }
    return h('td', { colspan: '6', class: 'attempt-extras' }, ...response, headers);
  }

  function renderDetail(log) {
    const D = state.detail;
    const key = JSON.stringify(log);
    if (key === D.key) return;
    const bodyEl = $('detail-body');
    // don't yank content from under the keyboard user during a background refresh
    if (D.key && bodyEl.contains(document.activeElement)) return;
    D.key = key;
    D.status = log.status || null;

    const attempts = Array.isArray(log.attempts) ? log.attempts : [];
    const item = (label, value) => [h('dt', null, label), h('dd', null, value)];
    const next = nextAttemptEl(log);
    const dl = h('dl', { class: 'detail-grid', 'data-testid': 'detail-fields' },
      ...item('Status', h('span', { 'data-testid': 'detail-status' }, resultBadge(log))),
      ...(next ? item('Next attempt', h('span', { 'data-testid': 'detail-next-attempt' },
        relTimeEl(log.nextAttemptAt, 'next'), ' (', timeEl(log.nextAttemptAt, exactFmt), ')')) : []),
      ...item('Event', h('code', null, log.event || '')),
      ...item('Delivery ID', h('code', { 'data-testid': 'detail-delivery-id' }, log.deliveryId || '—')),
      ...item('URL', h('code', null, log.url || '—')),
      ...item('HTTP status', log.statusCode === null || log.statusCode === undefined ? '—' : String(log.statusCode)),
      ...item('Attempts', h('span', { 'data-testid': 'detail-attempt-count' },
        String(typeof log.attemptCount === 'number' ? log.attemptCount : attempts.length))),
      ...item('Created', timeEl(log.createdAt)),
      ...item('Delivered', log.deliveredAt ? timeEl(log.deliveredAt) : 'Not delivered'),
      ...item('Error', log.error ? h('span', { 'data-testid': 'detail-error' }, log.error) : '—'));

    let attemptsBlock;
    if (attempts.length) {
      attemptsBlock = h('div', { class: 'table-wrap' }, h('table', { class: 'attempts', 'data-testid': 'attempts-table' },
        h('caption', { class: 'visually-hidden' }, 'Delivery attempts, each followed by its response and request headers'),
        h('thead', null, h('tr', null,
          h('th', { scope: 'col', class: 'num' }, '#'),
          h('th', { scope: 'col' }, 'Time'),
          h('th', { scope: 'col' }, 'Trigger'),
          h('th', { scope: 'col' }, 'HTTP status'),
          h('th', { scope: 'col', class: 'num' }, 'Duration'),
          h('th', { scope: 'col' }, 'Error'))),
        h('tbody', null, ...attempts.flatMap((a) => [
          h('tr', { 'data-testid': 'attempt-row', class: 'attempt-row' },
            h('td', { class: 'num' }, numText(a.attempt)),
            h('td', null, timeEl(a.createdAt)),
            h('td', { 'data-testid': 'attempt-trigger', 'data-trigger': a.trigger || '' },
              TRIGGER[a.trigger] || (a.trigger ? String(a.trigger) : '—')),
            h('td', null, a.statusCode === null || a.statusCode === undefined ? '—' : String(a.statusCode)),
            h('td', { class: 'num' }, a.durationMs === null || a.durationMs === undefined ? '—' : `${a.durationMs} ms`),
            h('td', null, a.error || '—')),
          h('tr', { 'data-testid': 'attempt-extras', class: 'attempt-more' }, attemptExtras(a)),
        ]))));
    } else {
      attemptsBlock = h('p', { class: 'muted small' }, 'No attempts yet: the delivery is queued and will be sent shortly.');
    }

    bodyEl.replaceChildren(dl,
      h('h4', null, 'Attempts'), attemptsBlock,
      h('h4', { id: 'payload-title' }, 'Payload'),
      h('pre', {
        class: 'payload', 'data-testid': 'payload-pretty', tabindex: '0', 'aria-labelledby': 'payload-title',
      }, prettyPayload(log.payload)),
      h('details', { class: 'exact-payload' },
        h('summary', null, 'The exact bytes sent (what the signature covers)'),
        h('pre', { class: 'payload', 'data-testid': 'payload', tabindex: '0' }, exactPayload(log.payload))));
  }

  function closeDetail(returnFocus = true) {
    const D = state.detail;
    const returnId = D.returnId;
    const wasOpen = D.id !== null;
    state.gen.detail += 1;
    D.id = null;
    D.key = '';
    D.status = null;
    parkDetail();
    $('detail-body').replaceChildren();
    for (const tr of $('logs-body').querySelectorAll('tr.log-row')) {
      tr.classList.remove('selected');
      tr.setAttribute('aria-expanded', 'false');
    }
    if (!returnFocus || !wasOpen) return;
    const row = returnId && $('logs-body').querySelector(`tr.log-row[data-id="${CSS.escape(returnId)}"]`);
    focusEl(row || $('logs-title'));
  }

  /* ------------------------------------------------------------ resend */

  /** Send a finished delivery again, then follow it until that attempt is recorded. */
  async function resend(id, btn) {
    if (btn.getAttribute('aria-busy') === 'true') return;
    btn.setAttribute('aria-busy', 'true'); // not disabled: the keyboard focus stays on it
    setStatus($('logs-status'), '');
    try {
      const d = await api('POST', `${API}/logs/${encodeURIComponent(id)}/resend`);
      const attempts = d.log && typeof d.log.attempts === 'number' ? d.log.attempts : 0;
      state.resend = { id, attempts, error: null };
      setStatus($('logs-status'), 'Queued to be sent again.');
      followResend(id);
    } catch (err) {
      if (err instanceof ApiError && err.silent) return;
      state.resend = { id, attempts: 0, error: err.message };
      setStatus($('logs-status'), `Not resent: ${err.message}`);
      btn.removeAttribute('aria-busy');
    }
    state.logs.key = '';
    await loadLogs();
    if (state.detail.id === id) openDetail(id, true);
  }

  /** Refresh the log (and the open detail) quickly until the resent attempt is recorded. */
  async function followResend(id) {
    const session = state.session;
    const until = Date.now() + FOLLOW_MAX_MS;
    while (Date.now() < until) {
      await sleep(FOLLOW_MS);
      const R = state.resend;
      if (session !== state.session || !R || R.id !== id || R.error) return;
      let log;
      try {
        log = (await api('GET', `${API}/logs/${encodeURIComponent(id)}`)).log;
      } catch (err) {
        if (!(err instanceof ApiError && err.silent)) loadLogs();
        return;
      }
      const done = !!log && FINISHED.has(logStatus(log)) && Number(log.attemptCount) > R.attempts;
      await loadLogs();
      if (state.detail.id === id) await openDetail(id, true);
      if (done) {
        const ok = logStatus(log) === 'succeeded';
        setStatus($('logs-status'), `The ${log.event} delivery was sent again and ${ok ? 'succeeded' : 'failed again'}.`);
        break;
      }
    }
    if (session === state.session) refreshData({ stats: true, chart: true });
  }

  /* ----------------------------------------------------------- refresh */

  function refreshData({ endpoints, logs, stats, chart, detail }) {
    const jobs = [];
    if (endpoints) jobs.push(loadEndpoints(!state.endpointsLoaded));
    if (logs) jobs.push(loadLogs());
    if (stats) jobs.push(loadStats());
    if (chart) jobs.push(loadChart());
    if (detail && state.detail.id) jobs.push(openDetail(state.detail.id, true));
    const session = state.session;
    return Promise.allSettled(jobs).then(() => {
      if (session !== state.session) return;
      const now = new Date();
      const el = $('last-updated');
      el.replaceChildren('Updated ', h('time', { datetime: now.toISOString(), title: now.toISOString() },
        now.toLocaleTimeString()));
    });
  }

  let manualRefreshRunning = false;
  async function manualRefresh() {
    if (manualRefreshRunning) return;
    manualRefreshRunning = true;
    $('refresh').setAttribute('aria-busy', 'true');
    try {
      await refreshData({ endpoints: true, logs: true, stats: true, chart: true, detail: true });
    } finally {
      manualRefreshRunning = false;
      $('refresh').removeAttribute('aria-busy');
    }
  }

  function tick() {
    if (!state.token || document.visibilityState !== 'visible') return;
    // keep it cheap: skip anything still in flight; chart only on manual refresh
    const logs = state.logs.inflight === 0;
    const stats = state.stats.inflight === 0;
    // an open detail is only re-fetched while its delivery is still unfinished
    const st = state.detail.status;
    const detail = !!state.detail.id && state.detail.key !== '' && (st === 'pending' || st === 'retrying');
    if (logs || stats || detail) {
      refreshData({ logs, stats, chart: false, detail });
    }
  }

  function startTimer() {
    stopTimer();
    state.timer = window.setInterval(tick, AUTO_REFRESH_MS);
    state.clock = window.setInterval(updateRelativeTimes, 1000);
  }

  function stopTimer() {
    if (state.timer !== null) window.clearInterval(state.timer);
    if (state.clock !== null) window.clearInterval(state.clock);
    state.timer = null;
    state.clock = null;
  }

  /* ------------------------------------------------------------- wiring */

  function init() {
    $('signin-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const token = $('token-input').value.trim();
      setText($('signin-status'), '');
      if (!token) {
        setText($('signin-error'), 'Paste your API token first.');
        focusEl($('token-input'));
        return;
      }
      startSession(token, false);
    });
    $('sign-out').addEventListener('click', signOut);
    $('refresh').addEventListener('click', manualRefresh);
    $('api-error-dismiss').addEventListener('click', () => {
      clearAllErrors();
      focusEl($('dashboard-title'));
    });

    $('config-form').addEventListener('submit', saveConfig);
    $('endpoint-add').addEventListener('click', startNewEndpoint);
    $('editor-cancel').addEventListener('click', cancelNewEndpoint);
    $('endpoint-rows').addEventListener('click', (ev) => {
      const btn = ev.target.closest('button[data-action]');
      if (!btn || btn.disabled) return;
      const id = btn.dataset.id;
      if (btn.dataset.action === 'manage') {
        // the endpoint already shown keeps what was typed (and a secret on display)
        if (id === state.selectedId) focusEl($('editor-title'));
        else selectEndpoint(id, $('editor-title'));
      }
      else if (btn.dataset.action === 'toggle') toggleEndpoint(id);
      else if (btn.dataset.action === 'reenable') reenableEndpoint(id, btn);
      else if (btn.dataset.action === 'recover') openRecover(id, btn);
    });
    $('editor-banner').addEventListener('click', (ev) => {
      const btn = ev.target.closest('button[data-action="reenable"]');
      if (btn && !btn.disabled) reenableEndpoint(btn.dataset.id, btn);
    });
    $('header-add').addEventListener('click', () => {
      const row = addHeaderRow('', '');
      numberHeaderRows();
      focusEl(row.querySelector('.header-name'));
    });
    $('header-rows').addEventListener('click', (ev) => {
      const btn = ev.target.closest('[data-testid="header-remove"]');
      if (btn) removeHeaderRow(btn.closest('.header-row'));
    });
    $('view-endpoint').addEventListener('change', () => setView($('view-endpoint').value));
    $('copy-secret').addEventListener('click', copySecret);
    $('secret-hide').addEventListener('click', () => {
      hideSecret();
      focusEl($('config-title'));
    });
    $('test-send').addEventListener('click', testSend);
    $('regenerate').addEventListener('click', () => openConfirm('regenerate'));
    $('regenerate-cancel').addEventListener('click', () => closeConfirm('regenerate', true));
    $('regenerate-confirm').addEventListener('click', regenerate);
    $('delete-config').addEventListener('click', () => openConfirm('delete'));
    $('delete-cancel').addEventListener('click', () => closeConfirm('delete', true));
    $('delete-confirm').addEventListener('click', deleteEndpoint);
    for (const kind of ['regenerate', 'delete']) {
      $(`${kind}-box`).addEventListener('keydown', (ev) => {
        if (ev.key === 'Escape') {
          ev.preventDefault();
          closeConfirm(kind, true);
        }
      });
    }

    for (const b of document.querySelectorAll('[data-window]')) {
      b.addEventListener('click', () => setWindow(b.dataset.window));
    }

    $('filter-event').addEventListener('change', changeFilter);
    $('filter-success').addEventListener('change', changeFilter);
    $('logs-prev').addEventListener('click', () => page(-1));
    $('logs-next').addEventListener('click', () => page(1));

    const body = $('logs-body');
    body.addEventListener('click', (ev) => {
      const btn = ev.target.closest('button[data-action="resend"]');
      if (btn) {
        if (!btn.disabled) resend(btn.closest('tr.log-row').dataset.id, btn);
        return;
      }
      const tr = ev.target.closest('tr.log-row');
      if (tr) openDetail(tr.dataset.id, false);
    });
    body.addEventListener('keydown', (ev) => {
      const tr = ev.target.closest('tr.log-row');
      if (!tr || ev.target !== tr) return;
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        openDetail(tr.dataset.id, false);
      } else if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
        // the next log row, past an open detail
        const rows = [...body.querySelectorAll('tr.log-row')];
        const to = rows[rows.indexOf(tr) + (ev.key === 'ArrowDown' ? 1 : -1)];
        if (to) {
          ev.preventDefault();
          to.focus();
        }
      }
    });
    state.detailPanel = $('log-detail');
    $('log-detail-close').addEventListener('click', () => closeDetail(true));
    $('log-detail').addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        ev.preventDefault();
        closeDetail(true);
      }
    });

    $('recover-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      startRecover();
    });
    $('recover-start').addEventListener('click', startRecover);
    $('recover-close').addEventListener('click', () => closeRecover(true));
    $('recover-dialog').addEventListener('cancel', (ev) => {
      ev.preventDefault();
      closeRecover(true);
    });

    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') tick();
    });

    let resizeTimer = null;
    const onResize = () => {
      window.clearTimeout(resizeTimer);
      resizeTimer = window.setTimeout(() => {
        if (state.chart.data) renderChart();
      }, 120);
    };
    if (window.ResizeObserver) {
      let lastW = 0;
      new ResizeObserver((entries) => {
        const w = Math.round(entries[0].contentRect.width);
        if (w && w !== lastW) {
          lastW = w;
          onResize();
        }
      }).observe($('chart-box'));
    } else {
      window.addEventListener('resize', onResize);
    }

    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) {
      startSession(saved, true);
    } else {
      showSignIn('');
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
