// The generated client in a real browser (headless Chromium, its own WebSocket): loaded by tests/browser.rs
// from a page it serves, with the conformance server's address in `?ws=`. Posts what it saw to /result.
import { EventsClient, PikkuError, PikkuEvents } from './build/channels.gen.js'

const baseUrl = new URLSearchParams(location.search).get('ws')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const results = {}

async function run() {
  const events = new EventsClient({ baseUrl, reconnect: { initialDelayMs: 50 } })
  results.stateBeforeOpen = events.state
  results.auth = await events.routes.action.auth({ token: 'valid' })
  results.create = await events.routes.action.create({ title: 'from a browser' })
  try {
    await events.routes.action.forbid()
  } catch (error) {
    results.forbid = [error instanceof PikkuError, error.name, error.message]
  }
  const binary = new Promise((resolve) => events.onBinaryMessage((data) => resolve([...new Uint8Array(data)])))
  events.sendBinary(new Uint8Array([1, 2, 3]))
  results.binary = await binary
  events.handle('clientThing', (input) => ({ browser: true, input }))
  results.rev = await events.routes.action.rev()

  const realtime = new PikkuEvents({ baseUrl: baseUrl + '/realtime', reconnect: { initialDelayMs: 50 } })
  const news = new Promise((resolve) => realtime.subscribe('news', resolve))
  await realtime.connection.ready()
  let received = null
  news.then((data) => (received = data))
  for (let i = 0; received === null && i < 100; i++) {
    await events.routes.action.emitAll({ topic: 'news', data: { hi: 'browser' } })
    await sleep(20)
  }
  results.news = received

  const reopened = new Promise((resolve) => events.onOpen(({ reconnected }) => reconnected && resolve(true)))
  events.routes.action.bye().catch(() => undefined)
  results.reconnected = await reopened
  results.primAfterReconnect = await events.routes.action.prim()
  events.close()
  realtime.close()
}

run()
  .catch((error) => (results.error = String((error && error.stack) || error)))
  .finally(() => fetch('/result', { method: 'POST', body: JSON.stringify(results) }))
