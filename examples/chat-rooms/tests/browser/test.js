// The chat page in headless Chromium (Debian's, through playwright-core: no browser download). It starts the
// demo on a free port, has two pages talk in one room, checks escaping, error frames, renames, room isolation,
// leaving, departures and a flood closed with 1008 (no retry), then kills the server, restarts it on the same
// port and checks that the page reconnects by itself, rejoins its room (under the name it had last) and can send
// again. It saves a screenshot of the two users chatting.
//
// Run by `cargo test -p example-chat-rooms --test browser`, which passes CHAT_BIN (the built binary). Standalone:
// `npm ci && node test.js` builds the binary with cargo first. CHROMIUM overrides /usr/bin/chromium, SCREENSHOT
// the screenshot's path (default: $TMPDIR/chat-rooms-demo.png).
//
// With STATELESS set to a store URL (`redis://127.0.0.1:6379`), the demo runs statelessly behind Pushpin with two
// workers (`--stateless pushpin --store <url>`) and the same pages chat through it. The flood and the restart are
// left out there: inbound rate limits are the gateway's in stateless mode, and the restart is the embedded
// server's story (behind Pushpin a worker may stop while the others serve its connections).
"use strict";
const { spawn, execFileSync } = require("node:child_process");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const screenshot = process.env.SCREENSHOT || path.join(os.tmpdir(), "chat-rooms-demo.png");
const WAIT_MS = 10_000;
const stateless = process.env.STATELESS || "";
const started = Date.now();
const step = (what) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${what}`);

// The demo binary: CHAT_BIN, or what `cargo build` reports it built.
function chatBinary() {
  if (process.env.CHAT_BIN) return process.env.CHAT_BIN;
  const out = execFileSync("cargo", ["build", "-q", "-p", "example-chat-rooms", "--message-format=json"], {
    cwd: __dirname, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 64 << 20,
  });
  for (const line of out.split("\n")) {
    if (!line.includes('"executable"')) continue;
    const msg = JSON.parse(line);
    if (msg.target && msg.target.name === "example-chat-rooms" && msg.executable) return msg.executable;
  }
  throw new Error("cargo built no example-chat-rooms binary");
}

// The server's log, printed if the test fails.
const serverLog = [];
// Every server started, killed when Node exits however it exits.
const servers = new Set();
process.on("exit", () => { for (const child of servers) child.kill(stateless ? "SIGTERM" : "SIGKILL"); });

// Starts the binary on `port` (0: a free one) and resolves with the child and its port once it listens.
function startServer(bin, port) {
  const mode = stateless ? ["--stateless", "pushpin", "--store", stateless] : [];
  const child = spawn(bin, ["--port", String(port), ...mode], {
    env: { ...process.env, NO_COLOR: "1", RUST_LOG: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  servers.add(child);
  child.once("exit", () => servers.delete(child));
  return new Promise((resolve, reject) => {
    let out = "";
    const onData = (chunk) => {
      out += chunk;
      serverLog.push(String(chunk));
      const match = out.match(/chat on http:\/\/127\.0\.0\.1:(\d+)\//);
      if (match) resolve({ child, port: Number(match[1]) });
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", reject);
    child.on("exit", (code, signal) => reject(new Error(`server exited (${code ?? signal}) before listening`)));
  });
}

// SIGKILL for the embedded server (a crash); SIGTERM behind Pushpin, so that the command stops Pushpin and its
// workers rather than leaving them running.
async function kill(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill(stateless ? "SIGTERM" : "SIGKILL");
  await exited;
}

async function open(browser, url, errors, who) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 600 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on("pageerror", (e) => errors.push(`${who}: ${e.message}`));
  page.on("console", (m) => {
    // Failed reconnect attempts while the server is down are logged by Chromium itself; anything else counts.
    if (m.type() === "error" && !/WebSocket connection to .* failed/.test(m.text())) errors.push(`${who}: ${m.text()}`);
  });
  await page.goto(url);
  return page;
}

async function join(page, room, nick) {
  await page.fill("#room", room);
  await page.fill("#nick", nick);
  await page.click("#join-button");
  await page.waitForSelector(`#log li:has-text('You joined \u201c${room}\u201d as ${nick}.')`);
  await page.waitForSelector("#conn[data-state='open']");
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

const seen = (page, text) => page.waitForSelector(`#log li:has-text(${JSON.stringify(text)})`);
const logOf = (page) => page.$$eval("#log li", (items) => items.map((li) => li.textContent));
const conn = (page) => page.$eval("#conn", (el) => ({ state: el.dataset.state, protocol: el.dataset.protocol }));

function expectEqual(actual, expected, what) {
  const [a, e] = [JSON.stringify(actual), JSON.stringify(expected)];
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

async function main() {
  const bin = chatBinary();
  let server = await startServer(bin, 0);
  const port = server.port;
  const url = `http://127.0.0.1:${port}/`;
  step(`server on ${url}`);
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  try {
    const errors = [];
    const ada = await open(browser, url, errors, "ada");
    const bob = await open(browser, url, errors, "bob");
    step("chromium up, two pages open");

    // The nickname travels as a `token.` subprotocol; the server selects `pikku.v1` and names us after it.
    await join(ada, "lobby", "Ada Lovelace");
    expectEqual(await conn(ada), { state: "open", protocol: "pikku.v1" }, "ada's connection");
    // The page's socket code is the generated client, imported from the server.
    const imported = await ada.evaluate(() =>
      performance.getEntriesByType("resource").some((e) => new URL(e.name).pathname === "/client/channels.gen.js"));
    expectEqual(imported, true, "the page imported /client/channels.gen.js");
    await ada.waitForSelector("#status:has-text('as Ada Lovelace \u00b7 1 person here')");
    await join(bob, "lobby", "Bob");
    expectEqual(await conn(bob), { state: "open", protocol: "pikku.v1" }, "bob's connection");
    await seen(ada, "Bob joined.");

    await say(ada, "Hi Bob! Is <b>this</b> bold?");
    await seen(bob, "Ada Lovelace: Hi Bob! Is <b>this</b> bold?");
    await say(bob, "No, the page never parses messages as HTML.");
    await seen(ada, "Bob: No, the page never parses messages as HTML.");
    await say(ada, "Good. Kill the server, I will reconnect.");
    await seen(bob, "Ada Lovelace: Good. Kill the server, I will reconnect.");
    await ada.waitForSelector("#status:has-text('2 people here')");
    await ada.screenshot({ path: screenshot });
    step(`messages both ways; screenshot ${screenshot}`);

    // An empty message is refused with an error frame; a rename is announced.
    await say(bob, "");
    await bob.waitForSelector("#log li.error:has-text('Invalid message data')");
    await say(bob, "/nick Bobby");
    await seen(ada, "Bob is now Bobby.");
    await bob.waitForSelector("#status:has-text('as Bobby')");

    // Another room hears nothing of the lobby.
    const cy = await open(browser, url, errors, "cy");
    await join(cy, "elsewhere", "Cy");
    await say(ada, "lobby only");
    await seen(bob, "Ada Lovelace: lobby only");
    await say(cy, "sentinel");
    await seen(cy, "Cy: sentinel");
    if ((await logOf(cy)).some((l) => l.includes("lobby only"))) throw new Error("the lobby leaked into elsewhere");
    // Leaving closes for good: no reconnect, and the join form is back.
    await cy.click("#leave-button");
    await cy.waitForSelector("#conn[data-state='closed']");
    await cy.waitForSelector("#join-button:not([disabled])");
    await cy.context().close();

    // Closing Bob's page announces his departure to Ada.
    await bob.context().close();
    await seen(ada, "Bobby left.");
    await ada.waitForSelector("#status:has-text('1 person here')");
    step("error frame, rename, room isolation, departure");

    if (stateless) {
      if (errors.length) throw new Error("browser errors:\n" + errors.join("\n"));
      console.log("ok");
      return;
    }

    // A page that floods the room is refused, then closed with 1008, and gives up instead of reconnecting.
    const flo = await open(browser, url, errors, "flo");
    await join(flo, "spam", "Flo");
    await flo.evaluate(() => {
      const form = document.getElementById("send"), input = document.getElementById("text");
      for (let i = 0; i < 60; i++) { input.value = "spam " + i; form.requestSubmit(); }
    });
    await flo.waitForSelector("#log li.error:has-text('Rate limit exceeded')");
    await seen(flo, "Disconnected (code 1008, rate limit exceeded).");
    await flo.waitForTimeout(1000);
    expectEqual((await conn(flo)).state, "closed", "flo's connection a second after the 1008 close");
    await flo.context().close();
    step("a flood is refused, closed with 1008, not retried");

    // Eve renames herself before the restart: a reconnect offers the name of the moment, so she rejoins as Evelyn.
    const eve = await open(browser, url, errors, "eve");
    await join(eve, "quiet", "Eve");
    await say(eve, "/nick Evelyn");
    await eve.waitForSelector("#status:has-text('as Evelyn')");

    // The server dies; the page notices, retries with backoff and rejoins once it is back on the same port.
    await kill(server.child);
    await ada.waitForSelector("#conn[data-state='reconnecting']");
    await seen(ada, "Connection lost; reconnecting");
    if (!(await ada.isDisabled("#send-button"))) throw new Error("send is enabled while reconnecting");
    // Wait for a refused attempt, so the restart is found by a retry after backoff.
    await ada.waitForSelector("#conn[data-state='reconnecting'][data-attempt='2']");
    step("server killed, page reconnecting (one retry refused)");
    server = await startServer(bin, port);
    await seen(ada, "Rejoined \u201clobby\u201d as Ada Lovelace");
    expectEqual(await conn(ada), { state: "open", protocol: "pikku.v1" }, "ada's connection after the restart");
    await seen(eve, "Rejoined \u201cquiet\u201d as Evelyn");
    step("server restarted, page rejoined");
    await say(ada, "back again");
    await seen(ada, "Ada Lovelace: back again");
    // Ada is really in the lobby of the new server: a newcomer counts her and hears her.
    const dee = await open(browser, url, errors, "dee");
    await join(dee, "lobby", "Dee");
    await dee.waitForSelector("#status:has-text('2 people here')");
    await seen(ada, "Dee joined.");
    await say(ada, "welcome, Dee");
    await seen(dee, "Ada Lovelace: welcome, Dee");
    step("sends again after the restart, seen by a newcomer");

    if (errors.length) throw new Error("browser errors:\n" + errors.join("\n"));
    console.log("ok");
  } finally {
    await browser.close();
    await kill(server.child);
    step("browser closed, server stopped");
  }
}

main().catch((err) => {
  console.error(err);
  console.error("--- server log ---\n" + serverLog.join("").split("\n").slice(-40).join("\n"));
  process.exitCode = 1;
});
