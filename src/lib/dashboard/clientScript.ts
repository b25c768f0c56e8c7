/**
 * The dashboard's browser script, inlined into the page under the CSP nonce (page.ts). Plain JavaScript (ES2020, no
 * framework, no build step): the build compiles only .ts, so the script ships as this string. It must contain no
 * backquote, no dollar-brace and no closing script tag, which a unit test checks, along with its syntax.
 *
 * What it does: reads the function key from its own address (`?code=`) and sends it with every data call as the
 * `x-functions-key` header; fetches `dashboard/data` for the chosen window, range and devices; draws one SVG line
 * chart per field (one line per device, colour and dash pattern per device, axes with local times) with a legend
 * and a table of every value (built when opened); fills the alerts, counts, quarantine and notes sections; refreshes
 * every 10 seconds while the page is visible (and when it becomes visible again), with a switch to turn that off
 * (WCAG 2.2.2); announces changes, not every refresh, through a polite live region. Every value from the server is
 * inserted as a text node or an attribute value, never as markup: device ids and field names come from devices.
 */
export const CLIENT_SCRIPT = String.raw`'use strict';
(() => {
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const REFRESH_MS = 10000;
  const COLOURS = 12;
  const DASH_PATTERNS = 4;
  /** Markers are drawn for every point only while a line has few enough for them to stay apart. */
  const MARKER_LIMIT = 90;
  const TIME_STEPS = [60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 10800e3, 21600e3, 43200e3, 86400e3, 172800e3, 604800e3];

  const byId = (id) => document.getElementById(id);
  const form = byId('controls');
  const windowSelect = byId('window');
  const rangeSelect = byId('range');
  const allDevices = byId('all-devices');
  const autoRefresh = byId('auto-refresh');
  const dataUrl = form.dataset.dataUrl;
  const maxPoints = Number(form.dataset.maxPoints);
  const maxDevices = Number(form.dataset.maxDevices);

  const pageParams = new URLSearchParams(location.search);
  // The key this page was opened with (?code=), or typed into the key form when the data route refused the call,
  // goes to the data calls as the x-functions-key header: the key stays out of the data URLs, and the server never
  // writes it into the page. The page itself needs no key, so the links in alert e-mails carry none.
  let functionKey = pageParams.get('code');
  const keyForm = byId('key-form');
  const keyInput = byId('function-key');

  const state = {
    /** Chosen device ids, in the order chosen; empty means every device. */
    selected: [],
    /** A range that came with the page's link (from/to, or a duration that is not a preset). */
    custom: null,
    timer: undefined,
    controller: undefined,
    data: null,
    announced: '',
    errorText: '',
    deviceBoxes: new Map(),
    openTables: new Set(),
    chartWidth: 0,
  };

  const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const secondsFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const dayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
  const stampFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });

  // ---- DOM helpers: text only ever goes in as text nodes or attribute values, never as markup. ----

  function el(tag, attrs, children) {
    return fill(document.createElement(tag), attrs, children);
  }

  function svgEl(tag, attrs, children) {
    return fill(document.createElementNS(SVG_NS, tag), attrs, children);
  }

  function fill(node, attrs, children) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children || []) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function own(object, key) {
    return object !== null && typeof object === 'object' && Object.prototype.hasOwnProperty.call(object, key) ? object[key] : undefined;
  }

  /** Text with backquoted spans (the hints name commands that way) as <code> elements. */
  function withCode(text) {
    return String(text)
      .split(String.fromCharCode(96))
      .map((part, i) => (i % 2 === 1 ? el('code', null, [part]) : part));
  }

  function stamp(iso) {
    return stampFormat.format(new Date(iso));
  }

  function rangeText(data) {
    return stamp(data.from) + ' to ' + stamp(data.to);
  }

  function windowText() {
    const option = windowSelect.selectedOptions[0];
    return option ? option.textContent : '';
  }

  // ---- controls ----

  function optionFor(select, value) {
    return Array.from(select.options).find((o) => o.value === value);
  }

  function setCustomRange(custom, label) {
    state.custom = custom;
    let option = optionFor(rangeSelect, 'custom');
    if (custom === null) {
      if (option) option.remove();
      return;
    }
    if (!option) {
      option = el('option', { value: 'custom' });
      rangeSelect.prepend(option);
    }
    option.textContent = label;
    rangeSelect.value = 'custom';
  }

  function updateRangeOptions() {
    const chosen = windowSelect.selectedOptions[0];
    const windowMs = Number(chosen.dataset.ms);
    for (const option of Array.from(rangeSelect.options)) {
      if (option.value === 'custom') continue;
      if (option.dataset.label === undefined) option.dataset.label = option.textContent;
      const ms = Number(option.dataset.ms);
      const usable = ms >= windowMs && Math.ceil(ms / windowMs) <= maxPoints;
      option.disabled = !usable;
      option.textContent = usable ? option.dataset.label : option.dataset.label + ' (needs a larger window)';
    }
    const current = rangeSelect.selectedOptions[0];
    if (!current || current.disabled) rangeSelect.value = chosen.dataset.defaultRange;
  }

  function query() {
    const q = new URLSearchParams();
    q.set('window', windowSelect.value);
    if (rangeSelect.value === 'custom' && state.custom !== null) {
      for (const name of ['range', 'from', 'to']) {
        if (state.custom[name]) q.set(name, state.custom[name]);
      }
    } else {
      q.set('range', rangeSelect.value);
    }
    for (const id of state.selected) q.append('deviceId', id);
    return q;
  }

  /** The address bar follows the controls (the key and anything else in it stay), so a reload or a shared link shows the same view. */
  function syncLocation(q) {
    const url = new URL(location.href);
    for (const name of ['window', 'range', 'from', 'to', 'deviceId']) url.searchParams.delete(name);
    for (const [name, value] of q) url.searchParams.append(name, value);
    if (url.href !== location.href) history.replaceState(null, '', url.href);
  }

  function onDeviceToggle(id, input) {
    if (input.checked) {
      if (state.selected.length >= maxDevices) {
        input.checked = false;
        announce('At most ' + maxDevices + ' devices can be compared at once.');
        return;
      }
      state.selected.push(id);
    } else {
      state.selected = state.selected.filter((d) => d !== id);
    }
    allDevices.checked = state.selected.length === 0;
    refresh();
  }

  function renderDevices(data) {
    const ids = data.devices.slice();
    for (const id of state.selected) if (!ids.includes(id)) ids.push(id);
    const wanted = new Set(ids);
    for (const [id, label] of state.deviceBoxes) {
      if (!wanted.has(id)) {
        label.remove();
        state.deviceBoxes.delete(id);
      }
    }
    // Existing boxes keep their place (and focus); new ones are inserted where the sorted list puts them.
    let previous = allDevices.closest('label');
    for (const id of ids) {
      let label = state.deviceBoxes.get(id);
      if (!label) {
        const input = el('input', { type: 'checkbox' });
        input.value = id;
        input.addEventListener('change', () => onDeviceToggle(id, input));
        label = el('label', { class: 'check' }, [input, id]);
        state.deviceBoxes.set(id, label);
      }
      if (previous.nextElementSibling !== label) previous.after(label);
      label.querySelector('input').checked = state.selected.includes(id);
      previous = label;
    }
    allDevices.checked = state.selected.length === 0;
  }

  // ---- fetching ----

  function schedule() {
    clearTimeout(state.timer);
    state.timer = undefined;
    if (autoRefresh.checked && document.visibilityState === 'visible') state.timer = setTimeout(refresh, REFRESH_MS);
  }

  async function refresh() {
    clearTimeout(state.timer);
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    const q = query();
    syncLocation(q);
    const headers = { accept: 'application/json' };
    if (functionKey) headers['x-functions-key'] = functionKey;
    form.setAttribute('aria-busy', 'true');
    try {
      const response = await fetch(dataUrl + '?' + q.toString(), {
        headers,
        signal: controller.signal,
        cache: 'no-store',
        credentials: 'same-origin',
        referrerPolicy: 'no-referrer',
      });
      const body = await response.json().catch(() => null);
      if (controller !== state.controller) return;
      if (!response.ok || body === null || typeof body !== 'object') showError(response.status, body);
      else {
        hideError();
        render(body);
      }
    } catch (error) {
      if (controller !== state.controller || (error && error.name === 'AbortError')) return;
      showError(0, null);
    } finally {
      if (controller === state.controller) {
        form.removeAttribute('aria-busy');
        schedule();
      }
    }
  }

  function showError(status, body) {
    let title;
    if (status === 401 || status === 403) {
      title = functionKey
        ? 'The function key was not accepted: enter another one.'
        : "The dashboard's data needs one of the app's function keys (in the Azure portal: the function app, App keys): enter it.";
      if (keyForm.hidden) {
        keyForm.hidden = false;
        keyInput.focus();
      }
    } else if (status === 400) title = 'The app refused these settings:';
    // Not a passing failure: no data is shown until the app's settings are fixed (the problems say which).
    else if (status === 503 && body && body.error === 'Misconfigured') title = "The app's configuration must be fixed before the dashboard can show its data:";
    else if (status === 503) title = 'The app cannot read its data right now; the dashboard keeps trying.';
    else if (status === 0) title = 'The app did not answer; the dashboard keeps trying.';
    else title = 'The app answered with an error (HTTP ' + status + '); the dashboard keeps trying.';
    const problems = body && Array.isArray(body.problems) ? body.problems.map(String) : [];
    const text = title + problems.join('|');
    byId('updated').textContent = 'Last attempt at ' + secondsFormat.format(new Date()) + ' failed';
    // An alert region speaks on every change: repeat failures stay quiet.
    if (text === state.errorText) return;
    state.errorText = text;
    const box = byId('error');
    // replaceChildren turns null into the text "null": pass only nodes.
    box.replaceChildren(el('p', null, [title]), ...(problems.length > 0 ? [el('ul', null, problems.map((p) => el('li', null, [p])))] : []));
    box.hidden = false;
  }

  function hideError() {
    state.errorText = '';
    // Hiding the focused key form would drop focus to the body: move it to the status line first.
    if (!keyForm.hidden && keyForm.contains(document.activeElement)) byId('updated').focus();
    keyForm.hidden = true;
    const box = byId('error');
    box.hidden = true;
    box.replaceChildren();
  }

  function announce(text) {
    if (text === state.announced) return;
    state.announced = text;
    byId('live').textContent = text;
  }

  // ---- rendering ----

  function render(data) {
    state.data = data;
    renderDevices(data);
    renderCharts(data);
    renderAlerts(data);
    renderRefusedDigests(data);
    renderCounts(data);
    renderQuarantine(data);
    renderNotes(data);
    byId('updated').textContent =
      'Updated ' + secondsFormat.format(new Date()) + (autoRefresh.checked ? ' · refreshes every 10 seconds' : ' · automatic refresh is off');
    const points = data.charted.reduce((n, d) => n + data.fields.reduce((m, f) => m + (own(own(data.series, d), f) || []).length, 0), 0);
    announce(
      points === 0
        ? 'No reports in this range yet.'
        : 'Showing ' + data.charted.length + ' device' + (data.charted.length === 1 ? '' : 's') + ', ' + data.fields.length + ' field' + (data.fields.length === 1 ? '' : 's') + ', ' + data.alerts.length + ' recent alert' + (data.alerts.length === 1 ? '' : 's') + '.',
    );
  }

  function seriesOf(data, deviceId, field) {
    return own(own(data.series, deviceId), field) || [];
  }

  function renderCharts(data) {
    const charts = byId('charts');
    const hasPoints = data.fields.some((f) => data.charted.some((d) => seriesOf(data, d, f).length > 0));
    byId('empty').hidden = hasPoints;
    byId('empty-detail').textContent = hasPoints
      ? ''
      : (state.selected.length > 0 ? 'The chosen devices reported nothing' : 'Nothing was reported') + ' from ' + rangeText(data) + '.';
    byId('telemetry-caption').textContent = hasPoints
      ? 'Mean of each ' + windowText() + ' window, ' + rangeText(data) + '. Each device has its own colour and line pattern.'
      : '';
    const focused = document.activeElement && charts.contains(document.activeElement) ? document.activeElement.dataset.field : undefined;
    const width = Math.max(280, Math.floor(charts.clientWidth / (charts.clientWidth >= 1000 ? 2 : 1)) - 8);
    state.chartWidth = charts.clientWidth;
    charts.replaceChildren(...(hasPoints ? data.fields.map((field, i) => chartFigure(data, field, i, width)) : []));
    if (focused !== undefined) {
      const again = Array.from(charts.querySelectorAll('summary')).find((s) => s.dataset.field === focused);
      if (again) again.focus();
    }
  }

  function niceTicks(min, max, count) {
    if (!(max > min)) {
      const pad = Math.abs(min) > 0 ? Math.abs(min) * 0.1 : 1;
      min -= pad;
      max += pad;
    }
    const rough = (max - min) / Math.max(1, count);
    const magnitude = Math.pow(10, Math.floor(Math.log10(rough)));
    const norm = rough / magnitude;
    const step = (norm >= 7.5 ? 10 : norm >= 3.5 ? 5 : norm >= 1.5 ? 2 : 1) * magnitude;
    const ticks = [];
    for (let v = Math.floor(min / step) * step; v <= Math.ceil(max / step) * step + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
    return ticks;
  }

  function timeTicks(from, to, maxTicks) {
    const step = TIME_STEPS.find((s) => (to - from) / s <= maxTicks) || TIME_STEPS[TIME_STEPS.length - 1];
    // Aligned to the viewer's local clock, so ticks fall on whole local hours and days.
    const offset = -new Date(from).getTimezoneOffset() * 60e3;
    const ticks = [];
    for (let t = Math.ceil((from + offset) / step) * step - offset; t <= to; t += step) ticks.push(t);
    return { ticks, step };
  }

  function chartFigure(data, field, index, width) {
    const height = width < 500 ? 220 : 260;
    const margin = { top: 12, right: 14, bottom: 30, left: 58 };
    const plotW = width - margin.left - margin.right;
    const plotH = height - margin.top - margin.bottom;
    const from = Date.parse(data.from);
    const to = Date.parse(data.to);
    const windowMs = Number(windowSelect.selectedOptions[0].dataset.ms) || 60e3;
    let lo = Infinity;
    let hi = -Infinity;
    let total = 0;
    for (const deviceId of data.charted) {
      for (const p of seriesOf(data, deviceId, field)) {
        lo = Math.min(lo, p.mean);
        hi = Math.max(hi, p.mean);
        total += 1;
      }
    }
    const yTicks = niceTicks(lo, hi, height < 240 ? 4 : 5);
    const y0 = yTicks[0];
    const y1 = yTicks[yTicks.length - 1];
    const x = (t) => margin.left + ((t - from) / (to - from)) * plotW;
    const y = (v) => margin.top + (1 - (v - y0) / (y1 - y0)) * plotH;
    const px = (n) => n.toFixed(1);

    const titleId = 'chart-' + index + '-title';
    const descId = 'chart-' + index + '-desc';
    const plot = svgEl('svg', {
      class: 'plot',
      viewBox: '0 0 ' + width + ' ' + height,
      width,
      height,
      role: 'img',
      'aria-labelledby': titleId + ' ' + descId,
      'data-field': field,
    });
    plot.append(
      svgEl('title', { id: titleId }, [field]),
      svgEl('desc', { id: descId }, [
        'Line chart of the mean ' + field + ' per ' + windowText() + ' window for ' + data.charted.length + ' device' + (data.charted.length === 1 ? '' : 's') + ', ' +
          rangeText(data) + ': ' + total + ' windows, lowest mean ' + numberFormat.format(lo) + ', highest ' + numberFormat.format(hi) + '. The table below the chart lists every value.',
      ]),
    );
    for (const v of yTicks) {
      plot.append(
        svgEl('line', { class: 'grid', x1: margin.left, x2: width - margin.right, y1: px(y(v)), y2: px(y(v)) }),
        svgEl('text', { x: margin.left - 6, y: px(y(v) + 4), 'text-anchor': 'end' }, [numberFormat.format(v)]),
      );
    }
    const { ticks, step } = timeTicks(from, to, Math.max(2, Math.floor(plotW / 90)));
    const withDay = to - from > 86400e3 || new Date(from).toDateString() !== new Date(to).toDateString();
    plot.append(svgEl('line', { class: 'axis', x1: margin.left, x2: width - margin.right, y1: height - margin.bottom, y2: height - margin.bottom }));
    plot.append(svgEl('line', { class: 'axis', x1: margin.left, x2: margin.left, y1: margin.top, y2: height - margin.bottom }));
    for (const t of ticks) {
      const label = step >= 86400e3 ? dayFormat.format(t) : withDay && new Date(t).getHours() === 0 && new Date(t).getMinutes() === 0 ? dayFormat.format(t) : timeFormat.format(t);
      // A label at either end is anchored inward so it is not cut off by the edge of the chart.
      const anchor = x(t) > width - 30 ? 'end' : x(t) < margin.left + 10 ? 'start' : 'middle';
      plot.append(
        svgEl('line', { class: 'axis', x1: px(x(t)), x2: px(x(t)), y1: height - margin.bottom, y2: height - margin.bottom + 4 }),
        svgEl('text', { x: px(anchor === 'end' ? Math.min(x(t) + 12, width - 2) : x(t)), y: height - margin.bottom + 18, 'text-anchor': anchor }, [label]),
      );
    }

    const legend = el('ul', { class: 'legend', 'aria-label': 'Devices in the ' + field + ' chart' });
    const slots = styleSlots(data);
    data.charted.forEach((deviceId, i) => {
      const points = seriesOf(data, deviceId, field);
      const slot = slots[i];
      const style = 'series-' + (slot % COLOURS) + ' dash-' + (slot % DASH_PATTERNS);
      let d = '';
      let previous;
      for (const p of points) {
        const t = Date.parse(p.t);
        // A window with no report is a gap in the line, not a straight segment across it.
        d += (previous !== undefined && t - previous <= windowMs ? 'L' : 'M') + px(x(t)) + ' ' + px(y(p.mean));
        previous = t;
      }
      if (points.length > 0) {
        plot.append(svgEl('path', { class: 'line ' + style, d, 'data-device': deviceId, 'data-points': points.length }));
        points.forEach((p, k) => {
          const t = Date.parse(p.t);
          const isolated = (k === 0 || t - Date.parse(points[k - 1].t) > windowMs) && (k === points.length - 1 || Date.parse(points[k + 1].t) - t > windowMs);
          if (points.length > MARKER_LIMIT && !isolated) return;
          plot.append(
            svgEl('circle', { class: 'marker series-' + (slot % COLOURS), cx: px(x(t)), cy: px(y(p.mean)), r: 3 }, [
              svgEl('title', null, [deviceId + ', ' + stamp(p.t) + ': mean ' + numberFormat.format(p.mean) + ' (lowest ' + numberFormat.format(p.min) + ', highest ' + numberFormat.format(p.max) + ', ' + p.count + ' values)']),
            ]),
          );
        });
      }
      legend.append(
        el('li', null, [
          svgEl('svg', { width: 28, height: 12, 'aria-hidden': 'true', focusable: 'false' }, [svgEl('line', { class: style, x1: 1, x2: 27, y1: 6, y2: 6 })]),
          points.length > 0 ? deviceId : deviceId + ' (no reports)',
        ]),
      );
    });

    const summary = el('summary', { 'data-field': field }, ['Table of the ' + field + ' values']);
    const details = el('details', null, [summary]);
    let filled = false;
    const fillTable = () => {
      if (filled) return;
      filled = true;
      details.append(valuesTable(data, field));
    };
    details.addEventListener('toggle', () => {
      if (details.open) {
        state.openTables.add(field);
        fillTable();
      } else {
        state.openTables.delete(field);
      }
    });
    if (state.openTables.has(field)) {
      details.open = true;
      fillTable();
    }
    return el('figure', { class: 'chart' }, [el('figcaption', null, [field, ' ', el('span', { class: 'unit' }, ['mean per ' + windowText() + ' window'])]), plot, legend, details]);
  }

  /**
   * Each charted device's colour and pattern: its place in the whole device list, so a device keeps its colour when
   * the filter changes; its place among the charted ones when that would give two of them the same colour.
   */
  function styleSlots(data) {
    const stable = data.charted.map((id) => data.devices.indexOf(id));
    const distinct = new Set(stable.map((n) => n % COLOURS)).size === stable.length && stable.every((n) => n >= 0);
    return distinct ? stable : data.charted.map((_, i) => i);
  }

  function valuesTable(data, field) {
    const rows = [];
    for (const deviceId of data.charted) for (const p of seriesOf(data, deviceId, field)) rows.push({ deviceId, p });
    rows.sort((a, b) => (a.p.t < b.p.t ? -1 : a.p.t > b.p.t ? 1 : a.deviceId < b.deviceId ? -1 : 1));
    const head = ['Window start', 'Device', 'Mean', 'Lowest', 'Highest', 'Values'];
    const table = el('table', null, [
      el('caption', null, [field + ' per ' + windowText() + ' window']),
      el('thead', null, [el('tr', null, head.map((h, i) => el('th', { scope: 'col', class: i >= 2 ? 'num' : null }, [h])))]),
      el(
        'tbody',
        null,
        rows.map(({ deviceId, p }) =>
          el('tr', null, [
            el('td', null, [stamp(p.t) + (p.open ? ' (open)' : '')]),
            el('td', { class: 'device' }, [deviceId]),
            el('td', { class: 'num' }, [numberFormat.format(p.mean)]),
            el('td', { class: 'num' }, [numberFormat.format(p.min)]),
            el('td', { class: 'num' }, [numberFormat.format(p.max)]),
            el('td', { class: 'num' }, [String(p.count)]),
          ]),
        ),
      ),
    ]);
    return el('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': field + ' values' }, [table]);
  }

  const STATUS_TEXT = { sent: 'sent', digested: 'digested', failed: 'failed', 'in-progress': 'in progress' };

  function alertDetail(alert) {
    if (alert.status === 'failed' && alert.error) return String(alert.error);
    if (alert.status === 'digested' && alert.dueAt) return 'digest due ' + stamp(alert.dueAt);
    return alert.attempts > 1 ? alert.attempts + ' attempts' : '';
  }

  function renderAlerts(data) {
    const box = byId('alerts');
    if (data.alerts.length === 0) {
      if (data.coverage.alerts.limited) {
        box.replaceChildren(el('p', { class: 'caption' }, ['None found among the newest ' + data.coverage.alerts.read + ' alert records; older ones in ' + rangeText(data) + ' were not read (see the notes).']));
        return;
      }
      box.replaceChildren(el('p', { class: 'caption' }, ['No critical alerts ' + (state.selected.length > 0 ? 'for the chosen devices ' : '') + 'from ' + rangeText(data) + '.']));
      return;
    }
    // The day is left out of times on the range's last day: the column stays narrow enough for a phone.
    const lastDay = new Date(data.to).toDateString();
    const when = (iso) => (new Date(iso).toDateString() === lastDay ? secondsFormat.format(new Date(iso)) : stamp(iso));
    const table = el('table', { class: 'alerts' }, [
      el('caption', { class: 'visually-hidden' }, ['Latest critical alerts, newest first']),
      el('thead', null, [el('tr', null, ['Time', 'Device', 'Status'].map((h) => el('th', { scope: 'col' }, [h])))]),
      el(
        'tbody',
        null,
        data.alerts.map((a) => {
          const detail = alertDetail(a);
          return el('tr', null, [
            el('td', { class: 'time' }, [el('time', { datetime: a.time }, [when(a.time)])]),
            el('td', { class: 'device' }, [a.deviceId]),
            el('td', null, [
              el('span', { class: 'badge status-' + (own(STATUS_TEXT, a.status) ? a.status : 'in-progress') }, [own(STATUS_TEXT, a.status) || String(a.status)]),
              detail === '' ? null : el('span', { class: 'detail' }, [detail]),
            ]),
          ]);
        }),
      ),
    ]);
    box.replaceChildren(el('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Latest critical alerts' }, [table]));
  }

  /**
   * Digest e-mails the e-mail service refused for good, apart from the alerts: their alerts show above as digested
   * but were never delivered. Hidden while there are none (and none can have been missed).
   */
  function renderRefusedDigests(data) {
    const box = byId('refused-digests');
    const refused = data.refusedDigests;
    if (refused.count === 0 && !data.lowerBounds.includes('refusedDigests')) {
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    const alerts = refused.latest.reduce((n, d) => n + (typeof d.alerts === 'number' ? d.alerts : 0), 0);
    const span = (d) =>
      typeof d.alerts !== 'number'
        ? 'not readable'
        : d.alerts + (d.alerts === 1 ? ' alert' : ' alerts') + (d.firstTime && d.lastTime ? ', ' + stamp(d.firstTime) + ' to ' + stamp(d.lastTime) : '');
    const BQ = String.fromCharCode(96);
    const hints = [];
    for (const d of refused.latest) for (const r of d.reasons) if (r.hint && !hints.includes(r.hint)) hints.push(r.hint);
    const table = el('table', { class: 'alerts' }, [
      el('caption', { class: 'visually-hidden' }, ['Refused digest e-mails, newest first']),
      el('thead', null, [el('tr', null, ['Refused', 'Device', 'Alerts it held', 'Reason'].map((h) => el('th', { scope: 'col' }, [h])))]),
      el(
        'tbody',
        null,
        refused.latest.map((d) =>
          el('tr', null, [
            el('td', { class: 'time' }, [el('time', { datetime: d.time }, [stamp(d.time)])]),
            el('td', { class: 'device' }, [d.deviceId]),
            el('td', null, [span(d)]),
            el('td', null, d.reasons.map((r) => el('span', { class: 'detail' }, [el('span', { class: 'badge status-failed' }, [String(r.code)]), r.detail ? ' ' + r.detail : '']))),
          ]),
        ),
      ),
    ]);
    box.replaceChildren(
      el('h3', null, ['Digest e-mails refused by the e-mail service']),
      el('p', { class: 'count' }, [
        countCell(data, 'refusedDigests', refused.count),
        ' digest e-mail' + (refused.count === 1 ? ' was' : 's were') + ' refused in this range' +
          (refused.latest.length < refused.count ? ' (the newest ' + refused.latest.length + ' are listed)' : '') +
          '. ' + (refused.latest.length < refused.count ? 'The listed ones held ' : 'They held ') + numberFormat.format(alerts) + (alerts === 1 ? ' alert' : ' alerts') +
          ', which show above as digested but were not delivered. They are not counted as messages.',
      ]),
      refused.latest.length === 0 ? null : el('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Refused digest e-mails' }, [table]),
      ...hints.map((hint) => el('p', { class: 'hint' }, withCode(hint))),
      el('p', { class: 'hint' }, withCode('Each is kept in the quarantine, named digests/criticalQueue/<day of its first alert>/<digest key>.json: ' + BQ + 'iot-routing quarantine list --endpoint criticalQueue --reason EmailRejected' + BQ + ' lists them, ' + BQ + 'iot-routing quarantine show <name>' + BQ + ' shows the recipients and the alert keys.')),
    );
    box.hidden = false;
  }

  /** A count; one that is a lower bound (a scan stopped at its limit, see the notes) reads "at least". */
  function countCell(data, key, value) {
    if (typeof value !== 'number') return 'not counted';
    if (!data.lowerBounds.includes(key)) return numberFormat.format(value);
    return el('span', { title: 'At least: a scan stopped at its limit (see the notes below)' }, [
      el('span', { 'aria-hidden': 'true' }, ['\u2265\u2009']),
      el('span', { class: 'visually-hidden' }, ['at least ']),
      numberFormat.format(value),
    ]);
  }

  function countsTable(data, caption, rows) {
    const max = Math.max(1, ...rows.map((r) => (typeof r[2] === 'number' ? r[2] : 0)));
    return el('table', null, [
      el('caption', null, [caption]),
      el('tbody', null, rows.map(([name, key, value]) =>
        el('tr', null, [
          el('th', { scope: 'row' }, [name]),
          el('td', { class: 'num' }, [countCell(data, key, value)]),
          el('td', { class: 'bar-cell' }, [
            svgEl('svg', { width: '100%', height: 14, viewBox: '0 0 100 14', preserveAspectRatio: 'none', 'aria-hidden': 'true', focusable: 'false' }, [
              svgEl('rect', { x: 0, y: 2, height: 10, width: typeof value === 'number' ? ((100 * value) / max).toFixed(2) : 0 }),
            ]),
          ]),
        ]),
      )),
    ]);
  }

  function renderCounts(data) {
    byId('counts').replaceChildren(
      countsTable(data, 'Messages per route', [
        ['Events (built-in endpoint)', 'events', data.routes.events],
        ['Critical queue', 'criticalQueue', data.routes.criticalQueue],
        ['Archive (storage)', 'archive', data.routes.archive],
      ]),
      countsTable(data, 'Check outcomes', [
        ['Accepted', 'accept', data.outcomes.accept],
        ['Accepted with warnings', 'warn', data.outcomes.warn],
        ['Quarantined', 'quarantine', data.outcomes.quarantine],
      ]),
    );
  }

  function renderQuarantine(data) {
    const box = byId('quarantine');
    if (data.quarantineTop.length === 0) {
      box.replaceChildren(el('p', { class: 'caption' }, ['Nothing quarantined' + (state.selected.length > 0 ? ' for the chosen devices' : '') + ' in this range.']));
      return;
    }
    box.replaceChildren(
      el('ol', { class: 'reasons' }, data.quarantineTop.map((r) =>
        el('li', null, [
          el('h3', null, [String(r.code)]),
          el('p', { class: 'count' }, withCode(numberFormat.format(r.count) + (r.count === 1 ? ' entry' : ' entries') + ': ' + r.summary)),
          el('p', null, withCode(r.hint)),
        ]),
      )),
    );
  }

  function renderNotes(data) {
    byId('notes').replaceChildren(...data.notes.map((n) => el('li', null, withCode(n))));
  }

  // ---- wiring ----

  form.addEventListener('submit', (event) => event.preventDefault());
  keyForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (key === '') return;
    functionKey = key;
    keyInput.value = '';
    // A second rejected key must be announced again, not swallowed as a repeat of the first.
    state.errorText = '';
    // Kept in the address as if the page had been opened with it, so a reload keeps working.
    const url = new URL(location.href);
    url.searchParams.set('code', key);
    history.replaceState(null, '', url.href);
    refresh();
  });
  windowSelect.addEventListener('change', () => {
    updateRangeOptions();
    refresh();
  });
  rangeSelect.addEventListener('change', () => {
    if (rangeSelect.value !== 'custom') setCustomRange(null);
    refresh();
  });
  allDevices.addEventListener('change', () => {
    if (!allDevices.checked && state.selected.length === 0) {
      // Nothing chosen means every device; choosing devices below narrows it.
      allDevices.checked = true;
      return;
    }
    if (allDevices.checked) {
      state.selected = [];
      for (const label of state.deviceBoxes.values()) label.querySelector('input').checked = false;
      refresh();
    }
  });
  autoRefresh.addEventListener('change', () => {
    if (autoRefresh.checked) refresh();
    else {
      clearTimeout(state.timer);
      byId('updated').textContent = byId('updated').textContent.replace(' · refreshes every 10 seconds', ' · automatic refresh is off');
    }
  });
  byId('refresh').addEventListener('click', () => refresh());
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') refresh();
    else clearTimeout(state.timer);
  });
  let resizeTimer;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (state.data !== null && byId('charts').clientWidth !== state.chartWidth) renderCharts(state.data);
    }, 200);
  });

  const windowParam = pageParams.get('window');
  if (windowParam !== null && optionFor(windowSelect, windowParam)) windowSelect.value = windowParam;
  const fromParam = pageParams.get('from');
  const toParam = pageParams.get('to');
  const rangeParam = pageParams.get('range');
  if (fromParam !== null || toParam !== null) {
    setCustomRange({ from: fromParam, to: toParam }, 'From the link: ' + (fromParam || '…') + ' to ' + (toParam || 'now'));
  } else if (rangeParam !== null) {
    if (optionFor(rangeSelect, rangeParam)) rangeSelect.value = rangeParam;
    else setCustomRange({ range: rangeParam }, 'From the link: last ' + rangeParam);
  }
  for (const id of pageParams.getAll('deviceId')) {
    if (!state.selected.includes(id) && state.selected.length < maxDevices) state.selected.push(id);
  }
  updateRangeOptions();
  refresh();
})();
`;
