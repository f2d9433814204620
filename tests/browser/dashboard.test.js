/*
 * dashboard.test.js - keel-gate serve's dashboard in headless Chromium (run by tests/browser/run.sh,
 * which makes the gate, starts the server and passes where they are in the environment).
 */
'use strict';
const { chromium } = require('playwright-core');
const { execFile, execFileSync } = require('child_process');

const env = process.env;
const results = { passed: 0, failed: 0 };

function kg(...args) {
    return execFileSync(env.KEEL_GATE, ['--repo', env.KEEL_REPO, '--quiet', ...args], { encoding: 'utf8' });
}

function kgAsync(...args) {
    return new Promise((resolve) => {
        execFile(env.KEEL_GATE, ['--repo', env.KEEL_REPO, '--quiet', ...args], (err, stdout, stderr) =>
            resolve({ code: err ? err.code : 0, stdout, stderr }));
    });
}

function head(branch) {
    return execFileSync('git', ['-C', env.KEEL_REPO, 'rev-parse', branch], { encoding: 'utf8' }).trim();
}

function assert(cond, msg) {
    if (!cond)
        throw new Error(msg);
}

async function check(name, fn) {
    try {
        await fn();
        results.passed++;
        console.log('ok: ' + name);
        return true;
    } catch (e) {
        results.failed++;
        console.log('FAIL: ' + name + ': ' + (e && e.message ? e.message.split('\n')[0] : e));
        return false;
    }
}

async function main() {
    kg('submit', 'alpha');
    const browser = await chromium.launch({
        executablePath: env.KEEL_CHROMIUM,
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
               '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.setDefaultTimeout(20000);
    /* every console error and uncaught exception; a refused request's "Failed to load resource" is
     * Chromium's own line about a 4xx the test asked for, kept apart */
    const errors = [], refused = [];
    page.on('console', (m) => {
        if (m.type() !== 'error')
            return;
        (/^Failed to load resource: the server responded with a status of 40[13]/.test(m.text()) ? refused : errors)
            .push(m.text());
    });
    page.on('pageerror', (e) => errors.push('uncaught: ' + e.message));
    const rows = page.locator('#queue tbody tr[data-change]');

    await check('the page loads and shows the queue', async () => {
        const r = await page.goto(env.KEEL_URL);
        assert(r.status() === 200, 'status ' + r.status());
        assert((r.headers()['content-security-policy'] || '').includes("default-src 'none'"), 'no strict CSP');
        await rows.first().waitFor();
        assert(await rows.count() === 1, (await rows.count()) + ' rows');
        const text = await rows.first().innerText();
        assert(text.includes('alpha') && text.includes('queued'), 'row: ' + text);
        await page.locator('#live.on').waitFor();
        await page.locator('#plot-queue path.series').waitFor({ state: 'attached' });
        await page.evaluate(() => { window.keelLoaded = 'once'; });
    });
    await check('one target: the target picker is hidden', async () => {
        const t = await page.evaluate(() => fetch('/api/v1/targets').then((r) => r.json()));
        assert(t.targets.length === 1, t.targets.length + ' targets');
        assert(await page.locator('#target-pick').isHidden(), 'the picker is shown');
    });
    await check('no console errors on load', async () => {
        assert(errors.length === 0, errors.join(' | '));
    });

    await check('a landing shows live, without a reload', async () => {
        const run = kgAsync('run', '--once');
        await page.locator('#queue tbody tr[data-change] td.state-testing').waitFor();
        await page.locator('#testing table').waitFor();
        const land = await run;
        assert(land.code === 0, 'run --once: exit ' + land.code + ' ' + land.stderr);
        await rows.first().waitFor({ state: 'detached' });
        await page.locator('#plot-land circle.dot').first().waitFor({ state: 'attached' });
        assert(await page.evaluate(() => window.keelLoaded) === 'once', 'the page was reloaded');
    });

    /* The branch typed as a person does: leaving the field looks it up, and its head is filled
     * in.  (Filling the head while that look-up is on its way raced with it: its value set
     * between fill's select-all and its typing gave a head twice as long, an invalid form, no
     * submit; on a loaded machine 3 runs of 3.) */
    async function typeBranch(name) {
        await page.fill('#submit-branch', ''); /* a change even when the field held the name */
        await page.press('#submit-branch', 'Tab');
        await page.fill('#submit-branch', name);
        await page.press('#submit-branch', 'Tab');
        await page.locator('#submit-branch-info', { hasText: head(name).slice(0, 12) }).waitFor();
    }

    await check('a submit without a token is refused, the error shown', async () => {
        await typeBranch('beta');
        assert(await page.inputValue('#submit-head') === head('beta'),
               'head filled in: ' + await page.inputValue('#submit-head'));
        await page.click('#submit-form button[type=submit]');
        await page.locator('#error').waitFor().catch(async (e) => {
            const q = await page.evaluate(() => fetch('/api/v1/queue').then((r) => r.json()));
            throw new Error(e.message.split('\n')[0] + ' (the error ' +
                            (await page.locator('#error').isHidden() ? 'hidden' : 'shown') + ', branch info "' +
                            await page.locator('#submit-branch-info').innerText() + '", ' + q.changes.length +
                            ' queued, console errors: ' + errors.join(' | ') + ')');
        });
        const text = await page.locator('#error-text').innerText();
        assert(text.includes('401') && text.includes('token'), 'error: ' + text);
        const q = await page.evaluate(() => fetch('/api/v1/queue').then((r) => r.json()));
        assert(q.changes.length === 0, 'queued anyway');
    });

    await check('a submit with a read token is refused (403)', async () => {
        await page.fill('#token', env.KEEL_READ_TOKEN);
        await page.click('#token-form button[type=submit]');
        await typeBranch('beta');
        await page.click('#submit-form button[type=submit]');
        await page.locator('#error-text', { hasText: '403' }).waitFor();
    });

    await check('a head the person entered is kept by the look-up, and the difference said', async () => {
        const typed = head('alpha');
        await page.fill('#submit-head', typed);
        await typeBranch('beta');
        assert((await page.locator('#submit-branch-info').innerText()).includes('not the expected head entered'),
               'info: ' + await page.locator('#submit-branch-info').innerText());
        assert(await page.inputValue('#submit-head') === typed,
               'head overwritten: ' + await page.inputValue('#submit-head'));
        await page.fill('#submit-head', '');
    });

    await check('a submit with a token works', async () => {
        await page.fill('#token', env.KEEL_ADMIN_TOKEN);
        await page.click('#token-form button[type=submit]');
        assert((await page.locator('#token-state').innerText()).includes('token set'), 'token not set');
        assert(await page.evaluate(() => sessionStorage.getItem('keel-gate-token')) === env.KEEL_ADMIN_TOKEN,
               'not in sessionStorage');
        assert((await page.context().cookies()).length === 0, 'a cookie');
        /* the head is filled in from the branch (GET /api/v1/branch), with its subject */
        await page.fill('#submit-branch', '');
        await page.fill('#submit-head', '');
        await page.locator('#submit-branch-info', { hasText: /^$/ }).waitFor({ state: 'attached' });
        await page.fill('#submit-branch', 'beta');
        await page.press('#submit-branch', 'Tab');
        await page.locator('#submit-branch-info', { hasText: head('beta').slice(0, 12) }).waitFor();
        assert(await page.inputValue('#submit-head') === head('beta'),
               'head filled in: ' + await page.inputValue('#submit-head'));
        await page.click('#submit-form button[type=submit]');
        await page.locator('#queue tbody tr[data-change]', { hasText: 'beta' }).waitFor();
        assert(await page.locator('#error').isHidden(), 'an error: ' + await page.locator('#error-text').innerText());
    });

    await check('the paused banner appears on pause', async () => {
        await page.fill('#pause-reason', 'release 2.1 freeze');
        await page.click('#pause-form button[type=submit]');
        await page.locator('#paused', { hasText: 'release 2.1 freeze' }).waitFor();
    });

    await check('the paused banner follows a pause made elsewhere (another API client)', async () => {
        await page.click('#resume');
        await page.locator('#paused').waitFor({ state: 'hidden' });
        const r = await fetch(env.KEEL_URL + 'api/v1/queue/pause', {
            method: 'POST', headers: { Authorization: 'Bearer ' + env.KEEL_ADMIN_TOKEN },
            body: JSON.stringify({ reason: 'lab power cut' }) });
        assert(r.status === 200, 'pause by the API: ' + r.status);
        await page.locator('#paused', { hasText: 'lab power cut' }).waitFor();
    });

    await check('a screenshot is saved', async () => {
        await page.screenshot({ path: env.KEEL_SCREENSHOT, fullPage: true });
        console.log('screenshot: ' + env.KEEL_SCREENSHOT);
    });

    await check('a change\'s page: builds and a log range', async () => {
        await page.goto(env.KEEL_URL + '#/change/1');
        await page.locator('#change-builds table').first().waitFor();
        const caption = await page.locator('#change-builds caption').first().innerText();
        assert(caption.includes('passed'), 'build: ' + caption);
        await page.locator('#change-builds button', { hasText: 'Show log' }).first().click();
        await page.locator('#log-text', { hasText: 'ci: ' }).waitFor();
        assert((await page.locator('#log-range').innerText()).startsWith('bytes 0–'), 'range');
        await page.screenshot({ path: env.KEEL_SCREENSHOT.replace(/\.png$/, '-change.png'), fullPage: true });
    });

    await check('the console: commits × configurations, filtered', async () => {
        await page.goto(env.KEEL_URL + '#/console');
        await page.locator('#console tbody th code').first().waitFor();
        assert(await page.locator('#console thead th').count() === 5, 'columns');
        await page.selectOption('#console-filter', 'lint');
        assert(await page.locator('#console thead th').count() === 4, 'filtered columns');
        assert((await page.locator('#console tbody td.state-passed').innerText()).includes('passed'), 'cell');
    });

    await check('after landing: the post level built what landed', async () => {
        await page.goto(env.KEEL_URL + '#/levels');
        await page.locator('#post thead th', { hasText: 'smoke' }).waitFor();
        await page.locator('#post tbody td.state-passed').first().waitFor();
        assert((await page.locator('#nightly tbody td.muted').innerText()).includes('No nightly runs'),
               'nightly table');
        await page.screenshot({ path: env.KEEL_SCREENSHOT.replace(/\.png$/, '-levels.png'), fullPage: true });
    });

    await check('culprits: a post failure found live, verified and backed out through the gate', async () => {
        await page.goto(env.KEEL_URL + '#/culprits');
        await page.locator('#culprits tbody td.muted', { hasText: 'No culprit searches' }).waitFor();
        await page.evaluate(() => { window.keelLoaded = 'culprits'; });
        const r = await fetch(env.KEEL_URL + 'api/v1/queue/resume', {
            method: 'POST', headers: { Authorization: 'Bearer ' + env.KEEL_ADMIN_TOKEN } });
        assert(r.status === 200, 'resume: ' + r.status);
        kg('submit', 'breaker');
        const run = await kgAsync('run', '--once');
        assert(run.code === 0, 'run --once: exit ' + run.code + ' ' + run.stderr);
        const row = page.locator('#culprits tbody tr', { hasText: 'smoke' });
        await row.locator('td.state-verified').waitFor();
        assert(await page.evaluate(() => window.keelLoaded) === 'culprits', 'the page was reloaded');
        const text = await row.innerText();
        assert(/post/.test(text) && /%/.test(text), 'row: ' + text);
        await page.screenshot({ path: env.KEEL_SCREENSHOT.replace(/\.png$/, '-culprits.png'), fullPage: true });
    });

    await check('backouts: the revert landed, the breaker closed with its budget', async () => {
        await page.click('nav a[href="#/backouts"]');
        const row = page.locator('#backouts tbody tr', { hasText: 'smoke' });
        await row.locator('td.state-landed').waitFor();
        assert((await row.innerText()).includes('#'), 'no change link: ' + await row.innerText());
        const b = await page.locator('#breaker').innerText();
        assert(b.includes('closed') && /1 created, 1 landed of 3/.test(b), 'breaker: ' + b);
        assert(await page.locator('#breaker-form').isHidden(), 'a reset button on a closed breaker');
        await page.screenshot({ path: env.KEEL_SCREENSHOT.replace(/\.png$/, '-backouts.png'), fullPage: true });
    });

    await check('flows: the configuration\'s flow with its tips and state', async () => {
        await page.click('nav a[href="#/flows"]');
        const row = page.locator('#flows tbody tr', { hasText: 'release/2.1' });
        await row.waitFor();
        const text = await row.innerText();
        assert(text.includes('main → release/2.1') && text.includes(head('release/2.1').slice(0, 10)),
               'row: ' + text);
        await page.screenshot({ path: env.KEEL_SCREENSHOT.replace(/\.png$/, '-flows.png'), fullPage: true });
    });

    await check('keyboard: the token field and the forms are labelled and reachable', async () => {
        for (const id of ['token', 'submit-branch', 'submit-head', 'submit-priority', 'pause-reason'])
            assert(await page.locator('label[for="' + id + '"]').count() === 1, 'no label for ' + id);
        await page.goto(env.KEEL_URL + '#/');
        await page.locator('#token').focus();
        await page.keyboard.press('Tab');
        assert(await page.evaluate(() => document.activeElement.textContent) === 'Use', 'tab order');
    });

    /* the second gate: main and comp/net, a change queued on comp/net only */
    const page2 = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page2.setDefaultTimeout(20000);
    page2.on('console', (m) => { if (m.type() === 'error') errors.push('second gate: ' + m.text()); });
    page2.on('pageerror', (e) => errors.push('second gate: uncaught: ' + e.message));
    const asked = []; /* the API requests the page made */
    page2.on('request', (r) => { if (r.url().includes('/api/v1/')) asked.push(r.url()); });
    const rows2 = page2.locator('#queue tbody tr[data-change]');

    await check('two targets: the picker is shown, on the default target', async () => {
        await page2.goto(env.KEEL_URL2);
        await page2.locator('#target-pick').waitFor();
        const options = await page2.locator('#target-pick option').allInnerTexts();
        assert(options.join(',') === 'main,comp/net', 'options: ' + options.join(','));
        assert(await page2.inputValue('#target-pick') === 'main', 'chosen: ' + await page2.inputValue('#target-pick'));
        await page2.locator('#target', { hasText: 'main' }).waitFor();
        await page2.locator('#queue tbody td.muted').first().waitFor(); /* main's queue is empty */
        assert(await rows2.count() === 0, (await rows2.count()) + ' rows on main');
    });

    await check('two targets: choosing comp/net shows its queue, ?target= on the page and the API', async () => {
        const before = asked.length;
        await page2.selectOption('#target-pick', 'comp/net');
        await page2.locator('#target', { hasText: 'comp/net' }).waitFor();
        await rows2.first().waitFor();
        const text = await rows2.first().innerText();
        assert(text.includes('net-topic') && text.includes('queued'), 'row: ' + text);
        assert(new URL(page2.url()).searchParams.get('target') === 'comp/net', 'page: ' + page2.url());
        const after = asked.slice(before);
        const queue = after.filter((u) => new URL(u).pathname === '/api/v1/queue');
        const net = (u) => new URL(u).searchParams.get('target') === 'comp/net';
        /* a refresh the page had under way when the choice was made may still ask for main's
         * queue (seen once in make check); from the page's first request for comp/net on, every
         * request asks for it */
        const first = queue.findIndex(net);
        assert(first >= 0, 'no queue request for comp/net after the choice: ' + after.join(' '));
        assert(queue.slice(first).every(net),
               'a queue request without ?target=comp/net after one with it: ' + queue.join(' '));
        const events = after.filter((u) => new URL(u).pathname === '/api/v1/events');
        assert(events.length > 0 && events.every((u) => new URL(u).searchParams.get('target') === 'comp/net'),
               'the event stream: ' + events.join(' '));
        await page2.screenshot({ path: env.KEEL_SCREENSHOT.replace(/\.png$/, '-targets.png'), fullPage: true });
    });

    await check('two targets: a reload keeps the target chosen', async () => {
        await page2.reload();
        await page2.locator('#target', { hasText: 'comp/net' }).waitFor();
        assert(await page2.inputValue('#target-pick') === 'comp/net', 'chosen: ' + await page2.inputValue('#target-pick'));
        await rows2.first().waitFor();
        assert((await rows2.first().innerText()).includes('net-topic'), 'row');
    });

    await check('no console errors at all (but the refusals asked for)', async () => {
        assert(errors.length === 0, errors.join(' | '));
    });
    await browser.close();
}

main().then(() => {
    console.log(results.passed + ' passed, ' + results.failed + ' failed');
    process.exit(results.failed ? 1 : 0);
}, (e) => {
    console.log('FAIL: ' + e.stack);
    console.log(results.passed + ' passed, ' + (results.failed + 1) + ' failed');
    process.exit(1);
});
