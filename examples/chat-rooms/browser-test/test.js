// Real-browser test of the chat page: starts the demo on a free port, opens it in headless Chromium (two tabs
// in one room, one in another), and checks messages, renames, error frames, room isolation and departures.
// Run: npm install && npm test   (CHROMIUM=/path/to/chromium to override /usr/bin/chromium)
"use strict";
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

const repo = path.resolve(__dirname, "../../..");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const screenshot = process.env.SCREENSHOT || path.join(os.tmpdir(), "chat.png");

function startServer() {
  const server = spawn("cargo", ["run", "-q", "-p", "example-chat-rooms", "--", "--port", "0"], {
    cwd: repo,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = new Promise((resolve, reject) => {
    let out = "";
    server.stdout.on("data", (chunk) => {
      out += chunk;
      const match = out.match(/http:\/\/127\.0\.0\.1:\d+\//);
      if (match) resolve(match[0]);
    });
    server.on("exit", (code) => reject(new Error("server exited with " + code + ":\n" + out)));
  });
  return { server, url };
}

async function join(context, url, room, nick, errors) {
  const page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && errors.push(nick + ": " + m.text()));
  page.on("pageerror", (e) => errors.push(nick + ": " + e.message));
  await page.goto(url);
  await page.fill("#room", room);
  await page.fill("#nick", nick);
  await page.click("#join-button");
  await page.waitForSelector("#log li:has-text('You joined')");
  return page;
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

const logOf = (page) => page.$$eval("#log li", (items) => items.map((li) => li.textContent));

async function main() {
  const { server, url: urlPromise } = startServer();
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "chat-chromium-"));
  let context;
  try {
    const url = await urlPromise;
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      viewport: { width: 720, height: 760 },
    });
    const errors = [];
    const ada = await join(context, url, "lobby", "ada", errors);
    const bob = await join(context, url, "lobby", "bob", errors);
    await ada.waitForSelector("#log li:has-text('bob joined.')");

    await say(ada, "hello <b>from</b> ada");
    await bob.waitForSelector("#log li:has-text('ada: hello <b>from</b> ada')");
    await say(bob, "hi ada");
    await ada.waitForSelector("#log li:has-text('bob: hi ada')");

    await say(bob, "/nick bobby");
    await ada.waitForSelector("#log li:has-text('bob is now bobby.')");
    await bob.waitForSelector("#status:has-text('as bobby')");

    await say(bob, "");
    await bob.waitForSelector("#log li.error:has-text('Invalid message data')");

    const cy = await join(context, url, "elsewhere", "cy", errors);
    await say(ada, "lobby only");
    await bob.waitForSelector("#log li:has-text('ada: lobby only')");
    await say(cy, "sentinel");
    await cy.waitForSelector("#log li:has-text('cy: sentinel')");
    const cyLog = await logOf(cy);
    if (cyLog.some((line) => line.includes("lobby only"))) throw new Error("lobby leaked: " + cyLog);

    await bob.screenshot({ path: screenshot });
    await bob.click("#leave-button");
    await ada.waitForSelector("#log li:has-text('bobby left.')");
    await ada.waitForSelector("#status:has-text('1 person here')");

    if (errors.length) throw new Error("browser errors: " + errors.join("; "));
    console.log("ok: ada's log", JSON.stringify(await logOf(ada)));
    console.log("screenshot of bob's tab:", screenshot);
  } finally {
    if (context) await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
    server.kill("SIGINT");
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
