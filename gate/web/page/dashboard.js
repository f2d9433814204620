/*
 * keel-gate serve's dashboard (docs/gate-api.md "Dashboard"): one page over
 * the API of the server that served it.  Live from the event stream (read
 * with fetch, so that it carries the token): an event schedules one refresh
 * of what it may change, so a burst of events costs one round of requests.
 * The stream reconnects with back-off (1 s doubling to 30 s) and resumes
 * after the last event it saw (Last-Event-ID).  No cookies: the token is kept
 * in sessionStorage and sent as a bearer token.
 */
'use strict';

(function () {
    const API = '/api/v1/';
    const SVG = 'http://www.w3.org/2000/svg';
    const TOKEN_KEY = 'keel-gate-token';
    const LOG_CHUNK = 65536;
    const REFRESH_DELAY_MS = 200; /* events within this are one refresh */
    const SERIES_EVERY_MS = 300000; /* the plots' window moves on even when nothing happens */

    const $ = (id) => document.getElementById(id);
    const state = {
        queue: null,
        lastEventId: null,
        backoff: 1000,
        stream: null,
        refreshTimer: 0,
        refreshing: false,
        again: false,
        seriesDue: true,
        consoleDue: true,
        view: 'queue',
        changeId: 0,
        filledHead: '', /* the expected head the branch look-up filled in last */
        log: null, /* {job, from, size, text} */
        /* the target shown (?target= of the page and of every request); '': the default */
        target: new URLSearchParams(location.search).get('target') || '',
    };

    /* ---- helpers ------------------------------------------------------------------------- */

    function el(tag, attrs, ...children) {
        const e = document.createElement(tag);
        for (const [k, v] of Object.entries(attrs || {})) {
            if (v === null || v === undefined || v === false)
                continue;
            if (k === 'class')
                e.className = v;
            else if (k === 'text')
                e.textContent = v;
            else if (k.startsWith('on'))
                e.addEventListener(k.slice(2), v);
            else
                e.setAttribute(k, v === true ? '' : String(v));
        }
        for (const c of children)
            if (c !== null && c !== undefined)
                e.append(c instanceof Node ? c : document.createTextNode(String(c)));
        return e;
    }

    function svg(tag, attrs, text) {
        const e = document.createElementNS(SVG, tag);
        for (const [k, v] of Object.entries(attrs || {}))
            e.setAttribute(k, String(v));
        if (text !== undefined)
            e.textContent = text;
        return e;
    }

    function duration(s) {
        if (s === null || s === undefined)
            return '—';
        s = Math.max(0, Math.round(s));
        if (s < 90)
            return s + ' s';
        if (s < 5400)
            return Math.round(s / 60) + ' min';
        if (s < 172800)
            return (s / 3600).toFixed(1) + ' h';
        return Math.round(s / 86400) + ' d';
    }

    function when(t) {
        return t ? new Date(t * 1000).toLocaleString() : '—';
    }

    function short(hash) {
        return hash ? hash.slice(0, 10) : '';
    }

    function stateCell(s) {
        return el('td', {class: 'state-' + s}, s);
    }

    function changeLink(id) {
        return el('a', {href: '#/change/' + id}, '#' + id);
    }

    function token() {
        return sessionStorage.getItem(TOKEN_KEY) || '';
    }

    function headers(extra) {
        const h = Object.assign({}, extra || {});
        if (token())
            h.Authorization = 'Bearer ' + token();
        return h;
    }

    function showError(msg) {
        $('error-text').textContent = msg;
        $('error').hidden = false;
    }

    function clearError() {
        $('error').hidden = true;
        $('error-text').textContent = '';
    }

    /* path with ?target= (or &target=) of the target shown, when it is not the default */
    function withTarget(path) {
        if (!state.target)
            return path;
        return path + (path.includes('?') ? '&' : '?') + 'target=' + encodeURIComponent(state.target);
    }

    /* A request to the API: its JSON, or an Error saying the API's error. */
    async function api(path, options) {
        const o = Object.assign({}, options || {});
        o.headers = headers(o.headers);
        const r = await fetch(API + withTarget(path), o);
        const type = r.headers.get('Content-Type') || '';
        const body = type.startsWith('application/json') ? await r.json() : await r.text();
        if (!r.ok) {
            const msg = body && body.error ? body.error : r.status + ' ' + r.statusText;
            const e = new Error(r.status + ': ' + msg);
            e.status = r.status;
            throw e;
        }
        return body;
    }

    function post(path, body) {
        return api(path, {
            method: 'POST',
            headers: {'Content-Type': 'application/json',
                      'Idempotency-Key': 'web-' + Date.now() + '-' + Math.random().toString(36).slice(2)},
            body: JSON.stringify(body || {}),
        });
    }

    /* ---- the queue, what is tested, rejected changes ------------------------------------ */

    function renderPaused(q) {
        const b = $('paused');
        if (q.paused) {
            b.textContent = 'The queue is paused since ' + when(q.paused.since) + ': ' + q.paused.reason +
                ' (nothing new is built until it is resumed)';
            b.hidden = false;
        } else {
            b.hidden = true;
            b.textContent = '';
        }
        $('resume').disabled = !q.paused;
    }

    function renderQueue(q) {
        state.queue = q;
        $('target').textContent = '— ' + q.target;
        document.title = 'keel-gate: ' + q.target + ' (' + q.changes.length + ')';
        renderPaused(q);
        const tb = $('queue').tBodies[0];
        tb.replaceChildren();
        for (const c of q.changes) {
            const cancel = el('button', {type: 'button', 'aria-label': 'cancel change ' + c.id,
                                         onclick: () => act(() => post('changes/' + c.id + '/cancel'))},
                              'Cancel');
            tb.append(el('tr', {'data-change': c.id},
                         el('td', {class: 'num'}, c.position),
                         el('td', {}, changeLink(c.id)),
                         el('td', {}, el('code', {}, c.branch)),
                         stateCell(c.state),
                         el('td', {class: 'num'}, c.candidate === null ? '—' : c.candidate),
                         el('td', {class: 'num'}, c.priority),
                         el('td', {class: 'num'}, duration(q.now - c.submitted_at)),
                         el('td', {class: 'num'}, c.eta_seconds === null ? 'unknown' : duration(c.eta_seconds)),
                         el('td', {}, cancel)));
        }
        if (q.changes.length === 0)
            tb.append(el('tr', {}, el('td', {colspan: 9, class: 'muted'}, 'The queue is empty.')));
        $('queue-summary').textContent = q.changes.length + ' change(s); ' +
            (q.build_seconds === null ? 'no build measured yet'
                                      : 'a build takes ' + duration(q.build_seconds) +
                                        ' (median of the last ' + q.builds_measured + ')');
    }

    /* The candidates under test and their jobs per configuration (each testing change's history). */
    async function renderTesting(q) {
        const testing = q.changes.filter((c) => c.state === 'testing');
        const byCandidate = new Map(); /* at most 20 candidates, each with all its changes */
        for (const c of testing) {
            if (!byCandidate.has(c.candidate)) {
                if (byCandidate.size === 20)
                    continue;
                byCandidate.set(c.candidate, {changes: [], jobs: null});
            }
            byCandidate.get(c.candidate).changes.push(c);
        }
        for (const [cand, entry] of byCandidate) {
            const h = await api('changes/' + entry.changes[0].id);
            const builds = h.builds.filter((b) => b.candidate === cand);
            entry.build = builds.length ? builds[builds.length - 1] : null;
        }
        const box = $('testing');
        box.replaceChildren();
        if (byCandidate.size === 0)
            box.append(el('p', {class: 'muted'}, 'Nothing is being tested.'));
        for (const [cand, entry] of byCandidate) {
            const div = el('div', {class: 'candidate'},
                           el('strong', {}, 'Candidate ' + cand), ': ',
                           ...entry.changes.flatMap((c, i) => [i ? ', ' : '', changeLink(c.id), ' ',
                                                              el('code', {}, c.branch)]));
            const b = entry.build;
            if (b && b.jobs.length) {
                const t = el('table', {},
                             el('caption', {class: 'sr'}, 'Jobs of candidate ' + cand),
                             el('thead', {}, el('tr', {},
                                                el('th', {scope: 'col'}, 'Configuration'),
                                                el('th', {scope: 'col'}, 'Attempt'),
                                                el('th', {scope: 'col'}, 'State'),
                                                el('th', {scope: 'col'}, 'Started'))));
                const body = el('tbody');
                for (const j of b.jobs)
                    body.append(el('tr', {}, el('th', {scope: 'row'}, j.config),
                                   el('td', {class: 'num'}, j.attempt), stateCell(j.state),
                                   el('td', {}, when(j.started_at))));
                t.append(body);
                div.append(el('p', {}, 'merge ', el('code', {}, short(b.merge)), ' on ',
                              el('code', {}, short(b.base)), ', attempt ' + b.attempt), t);
            } else {
                div.append(el('p', {class: 'muted'}, 'No job started yet.'));
            }
            box.append(div);
        }
    }

    function renderRejected(list) {
        const tb = $('rejected').tBodies[0];
        tb.replaceChildren();
        const gone = list.changes.filter((c) => c.state === 'rejected' || c.state === 'conflict');
        for (const c of gone.slice(0, 20))
            tb.append(el('tr', {}, el('td', {}, changeLink(c.id)), el('td', {}, el('code', {}, c.branch)),
                         stateCell(c.state), el('td', {}, c.reason)));
        if (gone.length === 0)
            tb.append(el('tr', {}, el('td', {colspan: 4, class: 'muted'}, 'None recently.')));
    }

    /* ---- plots ----------------------------------------------------------------------------- */

    const PLOT = {w: 480, h: 180, l: 40, r: 10, t: 10, b: 24};

    function axes(g, s, ymax, ylabel) {
        const x0 = PLOT.l, x1 = PLOT.w - PLOT.r, y0 = PLOT.h - PLOT.b, y1 = PLOT.t;
        for (let k = 0; k <= 4; k++) {
            const y = y0 - (y0 - y1) * k / 4;
            g.append(svg('line', {x1: x0, x2: x1, y1: y, y2: y, class: 'grid'}));
            const label = ylabel(ymax * k / 4);
            if (label !== null)
                g.append(svg('text', {x: x0 - 4, y: y + 4, 'text-anchor': 'end'}, label));
        }
        g.append(svg('line', {x1: x0, x2: x0, y1: y0, y2: y1, class: 'axis'}));
        g.append(svg('line', {x1: x0, x2: x1, y1: y0, y2: y0, class: 'axis'}));
        const hours = (s.to - s.from) / 3600;
        for (let k = 0; k <= 4; k++) {
            const x = x0 + (x1 - x0) * k / 4;
            const ago = Math.round(hours * (4 - k) / 4);
            g.append(svg('text', {x: x, y: PLOT.h - 6, 'text-anchor': 'middle'}, ago ? '-' + ago + ' h' : 'now'));
        }
        return {
            x: (t) => x0 + (x1 - x0) * (t - s.from) / Math.max(1, s.to - s.from),
            y: (v) => y0 - (y0 - y1) * v / Math.max(1e-9, ymax),
        };
    }

    function niceMax(v) {
        if (v <= 1)
            return 1;
        const p = Math.pow(10, Math.floor(Math.log10(v)));
        for (const m of [1, 2, 4, 8, 10]) /* a quarter of each: the grid's lines */
            if (m * p >= v)
                return m * p;
        return 10 * p;
    }

    function renderSeries(s) {
        const q = $('plot-queue');
        q.replaceChildren(svg('title', {}, 'Queue length over the last ' + Math.round((s.to - s.from) / 3600) + ' h'));
        const qmax = niceMax(Math.max(1, ...s.queue_length.map((p) => p.length)));
        const qa = axes(q, s, qmax, (v) => (Number.isInteger(v) ? String(v) : null));
        let d = '';
        s.queue_length.forEach((p, i) => {
            const x = qa.x(p.time), y = qa.y(p.length);
            d += i === 0 ? 'M' + x + ',' + y : 'H' + x + 'V' + y;
        });
        q.append(svg('path', {d: d, class: 'series'}));

        const l = $('plot-land');
        l.replaceChildren(svg('title', {}, s.landed.length + ' change(s) landed; median time to land ' +
                                           duration(s.land_seconds_median)));
        const longest = Math.max(60, ...s.landed.map((p) => p.seconds));
        const unit = longest <= 120 ? [1, ' s'] : longest <= 7200 ? [60, ' min'] : [3600, ' h'];
        const lmax = niceMax(longest / unit[0]) * unit[0];
        const la = axes(l, s, lmax, (v) => +(v / unit[0]).toFixed(2) + unit[1]);
        for (const p of s.landed) {
            const c = svg('circle', {cx: la.x(p.landed_at), cy: la.y(p.seconds), r: 3, class: 'dot'});
            c.append(svg('title', {}, 'change #' + p.change + ': ' + duration(p.seconds)));
            l.append(c);
        }
        if (s.land_seconds_median !== null) {
            const y = la.y(s.land_seconds_median);
            l.append(svg('line', {x1: PLOT.l, x2: PLOT.w - PLOT.r, y1: y, y2: y, class: 'median'}));
        }
    }

    /* ---- the console: commits × configurations ------------------------------------------- */

    function renderConsole(c) {
        const sel = $('console-filter');
        const keep = sel.value;
        sel.replaceChildren(el('option', {value: ''}, 'all configurations'));
        for (const name of c.configs)
            sel.append(el('option', {value: name, selected: name === keep}, name));
        const shown = keep && c.configs.includes(keep) ? [keep] : c.configs;
        const head = $('console').tHead.rows[0];
        head.replaceChildren(el('th', {scope: 'col'}, 'Commit'), el('th', {scope: 'col'}, 'Landed'),
                             el('th', {scope: 'col'}, 'Changes'),
                             ...shown.map((n) => el('th', {scope: 'col'}, n)));
        const tb = $('console').tBodies[0];
        tb.replaceChildren();
        for (const row of c.commits) {
            const tr = el('tr', {}, el('th', {scope: 'row'}, el('code', {}, short(row.commit))),
                          el('td', {}, when(row.landed_at)),
                          el('td', {}, ...row.changes.flatMap((id, i) => [i ? ' ' : '', changeLink(id)])));
            for (const name of shown) {
                const j = row.configs[name];
                if (!j) {
                    tr.append(el('td', {class: 'muted'}, '—'));
                    continue;
                }
                const td = stateCell(j.state);
                td.textContent = j.state + (j.elapsed_ms !== null ? ' (' + duration(j.elapsed_ms / 1000) + ')' : '');
                tr.append(td);
            }
            tb.append(tr);
        }
        if (c.commits.length === 0)
            tb.append(el('tr', {}, el('td', {colspan: 3 + shown.length, class: 'muted'}, 'Nothing landed yet.')));
        state.consoleData = c;
    }

    /* ---- after landing: the post level's commits × configurations, the nightly runs -------- */

    function outcomeCell(o) {
        const td = el('td', {class: 'state-' + o.outcome.replace(' ', '-')}, o.outcome);
        if (o.outcome === 'flaky')
            td.textContent = 'flaky (failed ' + o.fails + '/' + o.runs + ')';
        return td;
    }

    function renderLevels(l) {
        const names = l.post.configs.slice().sort();
        $('post').tHead.rows[0].replaceChildren(el('th', {scope: 'col'}, 'Commit'),
                                                ...names.map((n) => el('th', {scope: 'col'}, n)),
                                                el('th', {scope: 'col'}, 'Subject'));
        const tb = $('post').tBodies[0];
        tb.replaceChildren();
        for (const c of l.post.commits) {
            const tr = el('tr', {}, el('th', {scope: 'row'}, el('code', {}, short(c.commit))));
            for (const n of names)
                tr.append(c.configs[n] ? outcomeCell(c.configs[n]) : el('td', {class: 'muted'}, '—'));
            tr.append(el('td', {}, c.subject));
            tb.append(tr);
        }
        if (l.post.commits.length === 0)
            tb.append(el('tr', {}, el('td', {colspan: 2 + names.length, class: 'muted'},
                                      'No post builds yet (configurations with levels = post).')));
        const nb = $('nightly').tBodies[0];
        nb.replaceChildren();
        for (const r of l.nightly)
            nb.append(el('tr', {}, el('td', {}, when(r.due_at)), el('th', {scope: 'row'}, r.config),
                         el('td', {}, el('code', {}, short(r.commit))), outcomeCell(r)));
        if (l.nightly.length === 0)
            nb.append(el('tr', {}, el('td', {colspan: 4, class: 'muted'},
                                      'No nightly runs yet (configurations with levels = nightly).')));
    }

    /* ---- culprit searches, backouts, branch flows ----------------------------------------- */

    function emptyRow(tb, cols, text) {
        tb.append(el('tr', {}, el('td', {colspan: cols, class: 'muted'}, text)));
    }

    function renderCulprits(c) {
        const tb = $('culprits').tBodies[0];
        tb.replaceChildren();
        for (const s of c.searches) {
            const top = s.top.map((t) => (t.commit ? short(t.commit) : 'no culprit') + ' ' +
                                         (100 * t.posterior).toFixed(1) + '%').join(', ');
            const done = s.builds.filter((b) => b.result !== null).length;
            tb.append(el('tr', {},
                         el('th', {scope: 'row'}, '#' + s.id),
                         el('td', {}, s.config + ' (tier ' + s.tier + ')'),
                         el('td', {}, s.level),
                         el('td', {}, s.range.commits + ' after ', el('code', {}, short(s.range.passed)),
                            ' to ', el('code', {}, short(s.range.failed))),
                         el('td', {}, done + ' done, ' + s.verdict.running + ' running'),
                         el('td', {}, top || '—'),
                         el('td', {class: 'state-' + s.state}, s.state),
                         el('td', {}, s.culprit ? el('code', {}, short(s.culprit)) : '—'),
                         el('td', {class: 'evidence'}, s.evidence || '—')));
        }
        if (c.searches.length === 0)
            emptyRow(tb, 9, 'No culprit searches (a configuration failing at level post starts one).');
    }

    function renderBackouts(b) {
        const br = b.breaker, bu = b.budget;
        const budget = 'Budget: ' + bu.created + ' created, ' + bu.landed + ' landed of ' +
                       (bu.limit === null ? '?' : bu.limit) + ' since ' + when(bu.counted_from);
        $('breaker').textContent = (br.open ? 'Circuit breaker OPEN since ' + when(br.since) + ': ' + br.why +
                                              ' — no automatic backout until a person resets it. '
                                            : 'Circuit breaker closed. ') + budget;
        $('breaker').className = br.open ? 'banner' : '';
        $('breaker-form').hidden = !br.open;
        const tb = $('backouts').tBodies[0];
        tb.replaceChildren();
        for (const r of b.backouts)
            tb.append(el('tr', {},
                         el('th', {scope: 'row'}, el('code', {}, short(r.culprit))),
                         el('td', {}, r.config + ' (tier ' + r.tier + ')'),
                         el('td', {class: 'state-' + r.state}, r.state),
                         el('td', {}, r.rail || '—'),
                         el('td', {}, r.revert ? el('code', {}, short(r.revert)) : '—'),
                         el('td', {}, r.change ? changeLink(r.change) : '—'),
                         el('td', {}, r.subject, el('br'), el('span', {class: 'muted'}, r.reason))));
        if (b.backouts.length === 0)
            emptyRow(tb, 7, 'No backouts (a verified culprit is backed out here).');
    }

    function renderFlows(f) {
        const tb = $('flows').tBodies[0];
        tb.replaceChildren();
        for (const x of f.flows) {
            const blocked = x.state === 'blocked';
            const told = x.told.map((t) => t.kind + ' to ' + t.who + ' ' + when(t.at));
            tb.append(el('tr', {},
                         el('th', {scope: 'row'}, x.from + ' → ' + x.to),
                         el('td', {class: 'state-' + x.state}, x.state),
                         el('td', {}, el('code', {}, short(x.source_tip) || '?'), ' → ',
                            el('code', {}, short(x.destination_tip) || '?')),
                         el('td', {}, x.last_sync ? when(x.last_sync) : 'never'),
                         el('td', {}, blocked ? when(x.blocked_since) + ': ' + x.why : '—'),
                         el('td', {}, x.reminders + (x.escalated ? ', escalated' : '') +
                                      (told.length ? ' — ' + told.join('; ') : ''))));
        }
        if (f.flows.length === 0)
            emptyRow(tb, 6, 'No branch flows ([flow SRC -> DST] sections of the configuration).');
    }

    /* ---- a change's page ------------------------------------------------------------------ */

    async function renderChange(id) {
        const h = await api('changes/' + id);
        const c = h.change;
        $('change-title').textContent = 'Change #' + c.id + ': ' + c.branch;
        const facts = $('change-facts');
        facts.replaceChildren();
        const fact = (k, v) => facts.append(el('dt', {}, k), el('dd', {}, v));
        fact('State', el('span', {class: 'state-' + c.state}, c.state));
        fact('Reason', c.reason || '—');
        fact('Head', el('code', {}, c.head));
        fact('Target', c.target);
        fact('Priority', c.priority);
        fact('Submitted', when(c.submitted_at));
        const box = $('change-builds');
        box.replaceChildren();
        for (const b of h.builds) {
            const t = el('table', {},
                         el('caption', {}, 'Candidate ' + b.candidate + ', attempt ' + b.attempt + ': ' + b.result +
                                           ' (merge ' + short(b.merge) + ' on ' + short(b.base) + ')'),
                         el('thead', {}, el('tr', {}, ...['Configuration', 'Attempt', 'State', 'Exit', 'Time', 'Log']
                                                           .map((n) => el('th', {scope: 'col'}, n)))));
            const body = el('tbody');
            for (const j of b.jobs)
                body.append(el('tr', {}, el('th', {scope: 'row'}, j.config), el('td', {class: 'num'}, j.attempt),
                               stateCell(j.state), el('td', {class: 'num'}, j.exit_code),
                               el('td', {class: 'num'}, j.elapsed_ms === null ? '—' : duration(j.elapsed_ms / 1000)),
                               el('td', {}, j.log ? el('button', {type: 'button', onclick: () => openLog(j, true).catch((e) => showError(e.message))},
                                                       'Show log') : '—')));
            t.append(body);
            box.append(t);
        }
        if (h.builds.length === 0)
            box.append(el('p', {class: 'muted'}, 'No build yet.'));
        const fl = $('change-flakes');
        fl.replaceChildren();
        for (const f of h.flakes)
            fl.append(el('li', {}, when(f.time) + ': ' + JSON.stringify(f.detail)));
        if (h.flakes.length === 0)
            fl.append(el('li', {class: 'muted'}, 'None.'));
        const ev = $('change-events').tBodies[0];
        ev.replaceChildren();
        for (const e of h.events)
            ev.append(el('tr', {}, el('td', {}, when(e.time)), el('td', {}, e.kind),
                         el('td', {}, el('code', {}, JSON.stringify(e.detail)))));
    }

    /* A range of a job's log: the last 64 KiB first, earlier ones on demand (never a whole huge log). */
    async function openLog(job, fresh) {
        if (fresh) /* end: the byte after the last shown (the text is in characters, not bytes) */
            state.log = {job: job, from: -1, end: -1, size: 0, text: ''};
        const lg = state.log;
        const range = lg.from < 0 ? 'bytes=-' + LOG_CHUNK
                                  : 'bytes=' + Math.max(0, lg.from - LOG_CHUNK) + '-' + (lg.from - 1);
        const r = await fetch(withTarget(job.log), {headers: headers({Range: range})});
        if (!r.ok && r.status !== 416)
            throw new Error(r.status + ': ' + ((await r.json()).error || r.statusText));
        const text = r.status === 416 ? '' : await r.text();
        const cr = /bytes (\d+)-(\d+)\/(\d+)/.exec(r.headers.get('Content-Range') || '');
        if (cr) {
            lg.from = Number(cr[1]);
            lg.size = Number(cr[3]);
            if (lg.end < 0)
                lg.end = Number(cr[2]) + 1;
        } else {
            lg.from = 0;
            lg.size = new TextEncoder().encode(text).length;
            if (lg.end < 0)
                lg.end = lg.size;
        }
        lg.text = text + lg.text;
        $('log').hidden = false;
        $('log-title').textContent = 'Log of job ' + job.id + ' (' + job.config + ', attempt ' + job.attempt + ')';
        $('log-range').textContent = 'bytes ' + lg.from + '–' + Math.max(lg.end, lg.from) + ' of ' + lg.size;
        $('log-earlier').hidden = lg.from === 0;
        $('log-text').textContent = lg.text;
    }

    /* ---- refreshing ---------------------------------------------------------------------- */

    async function refresh() {
        state.refreshTimer = 0;
        if (state.refreshing) { /* one at a time: the events during one make one more after it */
            state.again = true;
            return;
        }
        state.refreshing = true;
        try {
            const q = await api('queue');
            renderQueue(q);
            if (state.view === 'queue') {
                await renderTesting(q);
                renderRejected(await api('changes'));
                if (state.seriesDue) {
                    state.seriesDue = false;
                    renderSeries(await api('series'));
                }
            } else if (state.view === 'console') {
                renderConsole(await api('commits?limit=50'));
            } else if (state.view === 'levels') {
                renderLevels(await api('levels'));
            } else if (state.view === 'culprits') {
                renderCulprits(await api('culprits'));
            } else if (state.view === 'backouts') {
                renderBackouts(await api('backouts'));
            } else if (state.view === 'flows') {
                renderFlows(await api('flows'));
            } else if (state.view === 'change') {
                await renderChange(state.changeId);
            }
            document.body.dataset.refreshed = String(Date.now());
        } catch (e) {
            showError(e.status === 401 ? e.message + ' — enter a token above' : e.message);
        }
        state.refreshing = false;
        if (state.again) {
            state.again = false;
            scheduleRefresh();
        }
    }

    function scheduleRefresh() {
        if (!state.refreshTimer)
            state.refreshTimer = setTimeout(refresh, REFRESH_DELAY_MS);
    }

    function onEvent(kind) {
        if (['landed', 'rejected', 'reopened', 'conflict', 'cancelled', 'submit'].includes(kind))
            state.seriesDue = true;
        scheduleRefresh();
    }

    /* ---- the event stream ------------------------------------------------------------------ */

    function setLive(text, cls) {
        const l = $('live');
        l.textContent = text;
        l.className = 'live ' + (cls || '');
    }

    function handleRecord(rec) {
        let id = null, kind = 'message';
        for (const line of rec.split('\n')) {
            if (line.startsWith('id:'))
                id = line.slice(3).trim();
            else if (line.startsWith('event:'))
                kind = line.slice(6).trim();
        }
        if (id !== null)
            state.lastEventId = id;
        if (id !== null || kind === 'changed') /* changed: a write with no event (a build, a job) */
            onEvent(kind);
    }

    async function stream() {
        const ctl = new AbortController();
        state.stream = ctl;
        try {
            const h = headers(state.lastEventId ? {'Last-Event-ID': state.lastEventId} : {});
            const r = await fetch(API + withTarget('events'), {headers: h, signal: ctl.signal, cache: 'no-store'});
            if (!r.ok) {
                const body = await r.json().catch(() => ({}));
                throw Object.assign(new Error(r.status + ': ' + (body.error || r.statusText)), {status: r.status});
            }
            setLive('live', 'on');
            state.backoff = 1000;
            state.seriesDue = true;
            scheduleRefresh(); /* what happened while away */
            const reader = r.body.getReader();
            const dec = new TextDecoder();
            let buf = '';
            for (;;) {
                const {value, done} = await reader.read();
                if (done)
                    break;
                buf += dec.decode(value, {stream: true}).replace(/\r\n?/g, '\n');
                let i;
                while ((i = buf.indexOf('\n\n')) >= 0) {
                    handleRecord(buf.slice(0, i));
                    buf = buf.slice(i + 2);
                }
            }
        } catch (e) {
            if (ctl.signal.aborted)
                return;
            if (e.status === 401 || e.status === 403)
                showError(e.message + ' — enter a token above');
        }
        if (state.stream !== ctl)
            return;
        const wait = state.backoff;
        state.backoff = Math.min(30000, state.backoff * 2);
        setLive('disconnected: retrying in ' + Math.round(wait / 1000) + ' s', 'off');
        setTimeout(() => { if (state.stream === ctl) stream(); }, wait);
    }

    /*
     * Every target the gate guards (GET /api/v1/targets): a choice in the
     * header when there are several; choosing one shows it (the page's
     * ?target=, every request's, the event stream's).
     */
    async function loadTargets() {
        const pick = $('target-pick');
        const t = await api('targets').catch(() => null);
        if (!t || t.targets.length < 2)
            return;
        pick.replaceChildren(...t.targets.map((x) => el('option', {value: x.target}, x.target)));
        pick.value = state.target || t.default;
        pick.hidden = false;
        pick.addEventListener('change', () => {
            state.target = pick.value === t.default ? '' : pick.value;
            const u = new URL(location.href);
            if (state.target)
                u.searchParams.set('target', state.target);
            else
                u.searchParams.delete('target');
            history.replaceState(null, '', u);
            state.lastEventId = null;
            state.seriesDue = true;
            restartStream();
            scheduleRefresh();
        });
    }

    function restartStream() {
        if (state.stream)
            state.stream.abort();
        state.stream = null;
        state.backoff = 1000;
        setLive('connecting…');
        stream();
    }

    /* ---- writes, the token, the views ----------------------------------------------------- */

    async function act(fn) {
        clearError();
        try {
            await fn();
            scheduleRefresh();
            return true;
        } catch (e) {
            showError(e.status === 401 ? e.message + ' — enter a token above' : e.message);
            return false;
        }
    }

    function showTokenState() {
        $('token-state').textContent = token() ? 'token set (this tab only)' : 'no token: read only';
    }

    function route() {
        const m = /^#\/change\/(\d+)/.exec(location.hash);
        const named = /^#\/(console|levels|culprits|backouts|flows)\b/.exec(location.hash);
        state.view = m ? 'change' : named ? named[1] : 'queue';
        state.changeId = m ? Number(m[1]) : 0;
        for (const v of ['queue', 'console', 'levels', 'culprits', 'backouts', 'flows', 'change'])
            $('view-' + v).hidden = state.view !== v;
        if (state.view === 'change') {
            $('log').hidden = true;
            state.log = null;
        }
        state.seriesDue = true;
        scheduleRefresh();
    }

    /*
     * The branch typed into the submit form: its commit as the gate sees it
     * (GET /api/v1/branch) filled in as the expected head, with its subject,
     * so that what is queued is the commit the person read; a branch already
     * queued or already in the target is said.  The head stays editable: a
     * branch that moves after the look-up is refused at the submit (409).  A
     * head the person entered (neither empty nor the one filled in before) is
     * kept, and the info says when it differs from the branch's.
     */
    async function lookUpBranch() {
        const name = $('submit-branch').value.trim();
        const info = $('submit-branch-info');
        info.textContent = '';
        if (!name)
            return;
        try {
            const b = await api('branch?name=' + encodeURIComponent(name));
            if ($('submit-branch').value.trim() !== name)
                return; /* typed on meanwhile: that look-up's answer is the one to show */
            const input = $('submit-head');
            const entered = input.value.trim();
            let text = b.head.slice(0, 12) + ' ' + b.subject;
            if (entered === '' || entered === state.filledHead) {
                input.value = b.head;
                state.filledHead = b.head;
            } else if (entered !== b.head) {
                text += ' (not the expected head entered below)';
            }
            if (b.active_change)
                text += ' (already queued: change ' + b.active_change + ')';
            else if (b.in_target)
                text += ' (already in ' + (state.queue ? state.queue.target : 'the target') + ')';
            info.textContent = text;
        } catch (e) {
            info.textContent = e.message;
        }
    }

    function init() {
        $('token-form').addEventListener('submit', (ev) => {
            ev.preventDefault();
            const t = $('token').value.trim();
            if (t)
                sessionStorage.setItem(TOKEN_KEY, t);
            $('token').value = '';
            showTokenState();
            clearError();
            restartStream();
        });
        $('token-forget').addEventListener('click', () => {
            sessionStorage.removeItem(TOKEN_KEY);
            showTokenState();
            restartStream();
        });
        $('error-close').addEventListener('click', clearError);
        $('submit-branch').addEventListener('change', lookUpBranch);
        $('submit-form').addEventListener('submit', async (ev) => {
            ev.preventDefault();
            const f = ev.target;
            const ok = await act(() => post('changes', {branch: f.branch.value.trim(),
                                                        expected_head: f.expected_head.value.trim(),
                                                        priority: Number(f.priority.value || 0)}));
            if (ok) {
                f.reset();
                $('submit-branch-info').textContent = '';
            }
        });
        $('pause-form').addEventListener('submit', async (ev) => {
            ev.preventDefault();
            const f = ev.target;
            if (await act(() => post('queue/pause', {reason: f.reason.value})))
                f.reset();
        });
        $('resume').addEventListener('click', () => act(() => post('queue/resume')));
        $('breaker-form').addEventListener('submit', (ev) => {
            ev.preventDefault();
            act(() => post('backouts/breaker/reset', {}));
        });
        $('console-filter').addEventListener('change', () => {
            if (state.consoleData)
                renderConsole(state.consoleData);
        });
        $('log-earlier').addEventListener('click', () => {
            if (state.log)
                openLog(state.log.job, false).catch((e) => showError(e.message));
        });
        window.addEventListener('hashchange', route);
        setInterval(() => { state.seriesDue = true; if (state.view === 'queue') scheduleRefresh(); },
                    SERIES_EVERY_MS);
        showTokenState();
        route();
        stream();
        loadTargets();
    }

    init();
})();
