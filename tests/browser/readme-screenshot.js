'use strict';
// Makes the README's picture of the admin page (docs/admin-page.png):
//
//   node tests/browser/readme-screenshot.js OUT.png
//
// starts the server ($PRESENCE_SERVER) on the embedded default with a
// throw-away state directory, lets a few users come and go for about 40
// seconds (so that the chart has a shape), and takes the picture in
// headless Chromium ($CHROMIUM, default /usr/bin/chromium).
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { freePort, sleep, waitFor } = require('../cluster/lib/util');

(async () => {
  const out = path.resolve(process.argv[2] || 'admin-page.png');
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-shot-'));
  const port = await freePort();
  const server = spawn(process.env.PRESENCE_SERVER, ['--port', String(port)], {
    env: { ...process.env, PRESENCE_SERVER_STATE_DIR: state },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let banner = '';
  server.stdout.on('data', (d) => { banner += d; });
  await waitFor(() => /password: (\S+)\)/.test(banner), { timeout: 10000, what: 'banner' });
  const password = /password: (\S+)\)/.exec(banner)[1];
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1180 } });
    await page.goto(`http://localhost:${port}/admin/`);
    await page.fill('#password', password);
    await page.click('#signin button[type=submit]');
    await page.waitForSelector('#live.on');
    const connect = async (user, channel) => {
      await page.fill('#connect-user', user);
      await page.fill('#connect-channel', channel);
      await page.click('#connect-form button[type=submit]');
      await page.waitForSelector(`#own-connections li[data-user="${user}"][data-status="in the channel"]`);
    };
    const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];
    for (const [i, user] of users.entries()) {
      await connect(user, i % 3 === 2 ? 'public:lobby' : 'public:chat');
      await sleep(3000);
    }
    await page.fill('#test-channel', 'public:big');
    await page.fill('#test-count', '30');
    await page.click('#test-form button[type=submit]');
    await sleep(6000);
    // Two leave again (the Disconnect button closes their WebSocket).
    await page.click('#own-connections li[data-user="dave"] button');
    await sleep(3000);
    await page.click('#own-connections li[data-user="bob"] button');
    await sleep(8000);
    await page.click('#channels tr[data-channel="public:chat"]');
    await page.waitForSelector('#members tr[data-user="alice"]');
    await sleep(1500);
    await page.screenshot({ path: out });
    console.log(`wrote ${out}`);
  } finally {
    await browser.close();
    server.kill('SIGTERM');
    await new Promise((r) => server.on('exit', r));
    fs.rmSync(state, { recursive: true, force: true });
  }
})().catch((e) => { console.error(e); process.exit(1); });
