// The live seat map: draws the venue from GET /seats (the stream's snapshot), keeps it
// current from the public event stream, and holds, confirms and releases seats with
// the token the user gives (the URL fragment #token=..., or pasted). The token stays
// in this tab's memory: it is removed from the address bar at once, never stored, and
// sent only in the Authorization header of this origin's API calls.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const show = document.querySelector('meta[name="boxoffice-show"]').content;
  const api = '/v1/shows/' + encodeURIComponent(show);
  const seats = new Map(); // seat id -> element
  const mySeats = new Set(); // seats of my live holds
  const holds = new Map(); // hold id -> hold (my holds, this tab)
  const areas = new Map(); // area name -> counts
  let token = null;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function say(text) {
    $('message').textContent = text || '';
  }

  // --- the token ---------------------------------------------------------------
  function subject(t) {
    try {
      const part = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return String(JSON.parse(atob(part)).sub);
    } catch (e) {
      return 'an unreadable token';
    }
  }

  function useToken(t) {
    token = (t || '').trim() || null;
    $('who').textContent = token ? 'holding as ' + subject(token) : 'no token: watching only';
    $('token').value = '';
  }

  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.has('token')) {
    useToken(fragment.get('token'));
    history.replaceState(null, '', location.pathname + location.search);
  } else {
    useToken(null);
  }
  $('signin').addEventListener('submit', (e) => {
    e.preventDefault();
    useToken($('token').value);
  });

  // --- the API -----------------------------------------------------------------
  async function call(method, path, body) {
    const headers = {};
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(api + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
    const text = await r.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = null;
    }
    if (!r.ok) {
      const err = data && data.error;
      throw new Error(err ? err.code + ': ' + err.message : 'HTTP ' + r.status);
    }
    return data;
  }

  // --- drawing -------------------------------------------------------------------
  function paint(id, letter) {
    const seat = seats.get(id);
    if (!seat) return;
    const state = letter === 'H' && mySeats.has(id) ? 'M' : letter;
    seat.className = 'seat ' + state;
    seat.dataset.state = state;
  }

  function showCounts(c) {
    $('counts').textContent =
      c.available + ' available · ' + c.held + ' held · ' + c.sold + ' sold of ' + c.total;
  }

  function drawAreas() {
    const list = $('areas');
    list.textContent = '';
    if (areas.size === 0) list.append(el('li', 'hint', 'none'));
    for (const [name, c] of areas) {
      const li = el('li', null, name + ': ' + c.available + ' of ' + c.total + ' left ');
      const b = el('button', null, 'Hold 2');
      b.dataset.area = name;
      li.append(b);
      list.append(li);
    }
  }

  function draw(map) {
    const venue = $('venue');
    let total = 0;
    for (const s of map.sections) for (const r of s.rows) total += r.seats.length;
    if (seats.size !== total) {
      venue.textContent = '';
      seats.clear();
      venue.classList.toggle('compact', total > 5000);
      for (const s of map.sections) {
        const box = el('div', 'section');
        box.append(el('h3', null, s.name));
        for (const r of s.rows) {
          const row = el('div', 'row');
          row.append(el('b', null, r.name));
          for (let i = 0; i < r.seats.length; i++) {
            const seat = el('i', 'seat');
            const id = s.name + ':' + r.name + ':' + (i + 1);
            seat.dataset.seat = id;
            seat.title = id;
            seats.set(id, seat);
            row.append(seat);
          }
          box.append(row);
        }
        venue.append(box);
      }
    }
    for (const s of map.sections) {
      for (const r of s.rows) {
        for (let i = 0; i < r.seats.length; i++) paint(s.name + ':' + r.name + ':' + (i + 1), r.seats[i]);
      }
    }
    areas.clear();
    for (const a of map.generalAdmission) areas.set(a.name, Object.assign({}, a.inventory));
    drawAreas();
    showCounts(map.inventory);
  }

  function drawHolds() {
    const list = $('holds');
    list.textContent = '';
    const now = Date.now();
    for (const [id, h] of holds) {
      if (h.expiresAtMs <= now) {
        forget(id);
        continue;
      }
      const what = h.seats && h.seats.length ? h.seats.join(', ') : h.quantity + ' × ' + h.area;
      const left = Math.round((h.expiresAtMs - now) / 1000);
      const li = el('li', 'hold', what + ' · ' + (h.amountMinor / 100).toFixed(2) + ' ' + h.currency + ' · ' + left + ' s ');
      li.dataset.hold = id;
      for (const action of ['confirm', 'release']) {
        const b = el('button', null, action === 'confirm' ? 'Confirm' : 'Release');
        b.dataset.action = action;
        b.dataset.hold = id;
        li.append(b);
      }
      list.append(li);
    }
  }

  function forget(id) {
    const h = holds.get(id);
    holds.delete(id);
    for (const s of (h && h.seats) || []) {
      mySeats.delete(s);
      const seat = seats.get(s);
      if (seat && seat.dataset.state === 'M') paint(s, 'H');
    }
  }

  // --- the stream ----------------------------------------------------------------
  const letterOf = { held: 'H', released: 'A', expired: 'A', returned: 'A', sold: 'S' };

  function change(ev) {
    const letter = letterOf[ev.kind];
    for (const s of ev.seats || []) {
      if (letter !== 'H') mySeats.delete(s);
      paint(s, letter);
    }
    if (ev.area && areas.has(ev.area)) {
      const c = areas.get(ev.area);
      const q = ev.quantity;
      if (ev.kind === 'held') { c.available -= q; c.held += q; }
      if (ev.kind === 'released' || ev.kind === 'expired') { c.held -= q; c.available += q; }
      if (ev.kind === 'sold') { c.held -= q; c.sold += q; }
      if (ev.kind === 'returned') { c.sold -= q; c.available += q; }
      drawAreas();
    }
    showCounts(ev.counts);
  }

  // EventSource reconnects by itself and sends Last-Event-ID: the shard replays what
  // was missed, or sends a reset (a fresh snapshot).
  const events = new EventSource(api + '/events');
  const snapshot = (e) => draw(JSON.parse(e.data).seatMap);
  events.addEventListener('snapshot', snapshot);
  events.addEventListener('reset', snapshot);
  events.addEventListener('seats', (e) => change(JSON.parse(e.data)));
  events.addEventListener('open', () => { $('status').textContent = 'live'; });
  events.addEventListener('error', () => { $('status').textContent = 'reconnecting…'; });

  // --- holding, confirming, releasing ------------------------------------------------
  async function hold(body) {
    if (!token) {
      say('Paste a token first (the demo prints one).');
      return;
    }
    try {
      const h = await call('POST', '/holds', body);
      holds.set(h.id, h);
      for (const s of h.seats || []) {
        mySeats.add(s);
        paint(s, 'H');
      }
      say('');
      drawHolds();
    } catch (e) {
      say(e.message);
    }
  }

  $('venue').addEventListener('click', (e) => {
    const seat = e.target.closest('[data-seat]');
    if (seat && seat.dataset.state === 'A') hold({ seats: [seat.dataset.seat] });
  });
  $('areas').addEventListener('click', (e) => {
    const b = e.target.closest('[data-area]');
    if (b) hold({ general: { area: b.dataset.area, quantity: 2 } });
  });
  $('holds').addEventListener('click', async (e) => {
    const b = e.target.closest('[data-action]');
    if (!b) return;
    const id = b.dataset.hold;
    try {
      if (b.dataset.action === 'confirm') {
        const payment = 'seatmap-' + Math.random().toString(36).slice(2);
        const booking = await call('POST', '/holds/' + encodeURIComponent(id) + '/confirm', { paymentReference: payment });
        say('Booked: ' + booking.reference);
        for (const s of booking.seats || []) paint(s, 'S');
      } else {
        await call('DELETE', '/holds/' + encodeURIComponent(id));
        say('Released.');
      }
      forget(id);
      drawHolds();
    } catch (err) {
      say(err.message);
    }
  });
  setInterval(drawHolds, 1000);
})();
