// Runs the generated client against the conformance server. Driven by tests/e2e.rs, which passes the server's
// base URL and the schema file, restarts the server when this program prints {"step":"restart"} and answers
// "restarted" on stdin. Prints one JSON line {"done":true,...} at the end; any failure exits non-zero.
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as readline from 'node:readline'
import { isDeepStrictEqual } from 'node:util'
import WebSocket from 'ws'
import Ajv2020 from 'ajv/dist/2020'
import {
  EventsClient,
  RoomsClient,
  GreetClient,
  PikkuConnection,
  PikkuError,
  PikkuEvents,
  PikkuWebSocket,
  channelUrl,
  type ConnectionState,
  type WebSocketConstructor,
} from './channels.gen'

const [baseUrl, schemaPath] = process.argv.slice(2)
const WS = WebSocket as unknown as WebSocketConstructor
const reconnect = { initialDelayMs: 50, maxDelayMs: 300 }

const lines = readline.createInterface({ input: process.stdin })
const stdinLines: string[] = []
let lineWaiter: (() => void) | null = null
lines.on('line', (line) => {
  stdinLines.push(line)
  lineWaiter?.()
})
async function nextLine(): Promise<string> {
  while (stdinLines.length === 0) await new Promise<void>((resolve) => (lineWaiter = resolve))
  return stdinLines.shift()!
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what)
    await sleep(10)
  }
}
async function rejection(promise: Promise<unknown>): Promise<PikkuError> {
  try {
    await promise
  } catch (error) {
    assert.ok(error instanceof PikkuError, 'rejects with a PikkuError: ' + String(error))
    return error
  }
  throw new Error('expected a rejection')
}

// Every text frame received, for validation against the schema file.
const received: { channel: string; text: string }[] = []
function capture(channel: string, connection: PikkuConnection) {
  const previous = connection.onmessage
  connection.onmessage = (event) => {
    if (typeof event.data === 'string') received.push({ channel, text: event.data })
    previous?.(event)
  }
}

async function main() {
  const checks: string[] = []
  const check = (name: string) => checks.push(name)

  // ---- queued before open, pushes, typed replies -------------------------------------------------------------
  const events = new EventsClient({ baseUrl, WebSocket: WS, reconnect })
  capture('events', events.connection)
  const states: ConnectionState[] = [events.state]
  events.onStateChange((state) => states.push(state))
  const frames: unknown[] = []
  events.subscribe((frame) => frames.push(frame))
  assert.equal(events.state, 'connecting')
  const authed = events.routes.action.auth({ token: 'valid' })
  const prim = events.call('action', 'prim')
  assert.deepEqual(await authed, { authResult: true })
  assert.equal(await prim, 'valid')
  assert.equal(frames[0], 'hello!', 'the connect push comes first, as raw text')
  check('queued-before-open')

  assert.deepEqual(await events.routes.action.create({ title: 'x' }), { id: 1, title: 'x' })
  assert.deepEqual(await events.callFrame('action', 'create', { title: 'y' }), { id: 1, title: 'y', action: 'create' })
  assert.deepEqual(await events.routes.action.arr(), [1, 2])
  assert.equal(await events.routes.action.maybe(), null)
  assert.equal(await events.routes.action.whoami(), 'u1')
  assert.equal(await events.routes.action.count(), 1)
  assert.equal(await events.routes.action.count(), 2)
  assert.equal(await events.routes.action.logout(), undefined)
  assert.equal(await events.routes.action.whoami(), null)
  await events.routes.action.auth({ token: 'valid' })
  assert.deepEqual(await events.routes.type.ping(), { pong: true })
  assert.deepEqual(await events.routes.action.echoIn({ a: [1] }), { got: { a: [1] } })
  assert.deepEqual(await events.routes.action.clash(), { x: 1 })
  // Replies to one route are matched by order.
  const [slow, fast, slow2] = await Promise.all([
    events.routes.action.slow(),
    events.routes.action.fast(),
    events.routes.action.slow(),
  ])
  assert.deepEqual([slow, fast, slow2], [{ n: 'slow' }, { n: 'fast' }, { n: 'slow' }])
  check('replies')

  // ---- error frames reject with typed errors ------------------------------------------------------------------
  const forbidden = await rejection(events.routes.action.forbid())
  assert.equal(forbidden.name, 'ForbiddenError')
  assert.equal(forbidden.message, 'Permission denied')
  assert.deepEqual(forbidden.route, { property: 'action', value: 'forbid' })
  const invalid = await rejection(events.connection.call('action', 'create', { title: 5 }))
  assert.equal(invalid.name, 'UnprocessableContentError')
  assert.equal(invalid.message, 'Invalid message data')
  assert.ok(invalid.details && invalid.details.length > 0 && invalid.details[0]!.path === '/title')
  const internal = await rejection(events.routes.action.boom())
  assert.equal(internal.name, 'InternalServerError')
  check('error-frames')

  // ---- default messages and pushes ----------------------------------------------------------------------------
  frames.length = 0
  events.send({ hello: 1 })
  await until('the default reply', () => frames.length > 0)
  assert.deepEqual(frames[0], { defaultGot: { hello: 1 } })
  frames.length = 0
  await events.routes.action.flood({ n: 2 })
  assert.equal(frames.length, 3, 'two pushes then the reply')
  assert.equal(frames[0], 'x'.repeat(16 * 1024))
  assert.deepEqual(frames[2], { action: 'flood' })
  check('pushes')

  // ---- Pikku's PikkuWebSocket API ----------------------------------------------------------------------------
  const viaRoute: unknown[] = []
  events.getRoute('action').subscribe('prim', (frame) => viaRoute.push(frame))
  events.getRoute('action').send('prim')
  events.getRoute('action').send('create', { title: 'r' })
  await until('the route subscriber', () => viaRoute.length > 0)
  assert.deepEqual(viaRoute[0], { action: 'prim', result: 'valid' })
  // A socket handed over as Pikku's client takes it.
  const raw = new PikkuWebSocket(new WebSocket(baseUrl + '/greet') as unknown as ConstructorParameters<typeof PikkuWebSocket>[0])
  capture('greet', raw)
  const greetings: unknown[] = []
  raw.subscribe((frame) => greetings.push(frame))
  raw.send('hi!')
  await until('the greeting', () => greetings.length > 0)
  assert.equal(greetings[0], 'hello')
  raw.close()
  const greet = new GreetClient({ baseUrl, WebSocket: WS })
  capture('greet', greet.connection)
  const answers: unknown[] = []
  greet.subscribe((frame) => answers.push(frame))
  greet.send('hey')
  await until('the other greeting', () => answers.length > 0)
  assert.equal(answers[0], 'ola')
  greet.close()
  check('pikku-api')

  // ---- binary ------------------------------------------------------------------------------------------------
  const binaries: number[][] = []
  events.onBinaryMessage((data) => binaries.push([...new Uint8Array(data)]))
  events.sendBinary(new Uint8Array([1, 2, 3]))
  await until('the binary reply', () => binaries.length > 0)
  assert.deepEqual(binaries[0], [3, 2, 1])
  check('binary')

  // ---- reverse RPC -------------------------------------------------------------------------------------------
  const stop = events.handle('clientThing', (input) => ({ answer: 42, got: input }))
  assert.deepEqual(await events.routes.action.rev(), { remoteSaid: { answer: 42, got: { q: 1 } } })
  stop()
  const missing = await rejection(events.routes.action.rev())
  assert.equal(missing.name, 'ChannelRPCError')
  events.handle('clientThing', async () => {
    throw new Error('not today')
  })
  const refused = await rejection(events.routes.action.rev())
  assert.equal(refused.name, 'ChannelRPCError')
  assert.match(refused.message, /not today/)
  // The fixture's reverse calls time out after 200 ms, unless the client says it is pending.
  events.handle('clientThing', async (_input, call) => {
    call.pending('thinking')
    await sleep(400)
    return { answer: 'late', id: call.id }
  })
  const late = await events.routes.action.rev()
  assert.deepEqual(late, { remoteSaid: { answer: 'late', id: (late as { remoteSaid: { id: string } }).remoteSaid.id } })
  events.handle('clientThing', async () => {
    await sleep(400)
    return 'too late'
  })
  const timedOut = await rejection(events.routes.action.rev())
  assert.equal(timedOut.name, 'ChannelRPCError')
  assert.match(timedOut.message, /timed out/)
  check('reverse-rpc')

  // ---- opening data ------------------------------------------------------------------------------------------
  const rooms = new RoomsClient({ baseUrl, WebSocket: WS, opening: { roomId: 'lobby 1', limit: 5 } })
  capture('rooms', rooms.connection)
  const roomFrames: unknown[] = []
  rooms.subscribe((frame) => roomFrames.push(frame))
  assert.deepEqual(await rooms.routes.action.info(), { roomId: 'lobby 1' })
  assert.deepEqual(roomFrames[0], { opening: { roomId: 'lobby 1', limit: 5 } })
  rooms.close()
  assert.equal(
    channelUrl('ws://h/', '/chat/{room}/:user-id', { room: 'a b', 'user-id': 'u/1', lang: 'fi', skip: undefined }),
    'ws://h/chat/a%20b/u%2F1?lang=fi'
  )
  assert.throws(() => channelUrl('ws://h', '/rooms/:roomId', {}), /Missing route param 'roomId'/)
  check('opening')

  // ---- hub events and the realtime events channel ------------------------------------------------------------
  await events.routes.action.sub({ topic: 'news' })
  const realtime = new PikkuEvents<{ news: { hi: number } }>({ baseUrl: baseUrl + '/realtime', WebSocket: WS, reconnect })
  capture('realtime-events', realtime.connection)
  const news: { hi: number }[] = []
  realtime.subscribe('news', (data) => news.push(data))
  await realtime.connection.ready()
  // The subscription is written first on open; a reply to a later call proves it was handled.
  await until('the realtime subscription', () => received.some((r) => r.channel === 'realtime-events' && r.text.includes('"subscribe"')))
  frames.length = 0
  await events.routes.action.emitAll({ topic: 'news', data: { hi: 1 } })
  await until('the realtime event', () => news.length === 1)
  assert.deepEqual(news[0], { hi: 1 })
  await until('the hub event on events', () => frames.some((f) => isDeepStrictEqual(f, { topic: 'news', data: { hi: 1 } })))
  assert.equal(realtime.streamUrl('a b'), baseUrl.replace('ws://', 'http://') + '/realtime/events/a%20b')
  check('hub-events')

  // ---- reconnect after the server closes the socket ----------------------------------------------------------
  let reopened = 0
  events.onOpen(({ reconnected }) => reconnected && reopened++)
  frames.length = 0
  // The reply may or may not beat the close; either way the socket comes back.
  void events.routes.action.bye().catch(() => undefined)
  await until('the reconnect after bye', () => reopened === 1)
  assert.ok(states.includes('reconnecting'))
  assert.equal(await events.routes.action.prim(), 'valid')
  await until('the hello on the new socket', () => frames.includes('hello!'))
  check('reconnect-after-close')

  // ---- reconnect across a server restart, with resubscription ------------------------------------------------
  const inFlight = events.routes.action.auth({ token: 'valid' }).then(() => 'ok', (e: PikkuError) => e.name)
  process.stdout.write(JSON.stringify({ step: 'restart' }) + '\n')
  assert.equal(await nextLine(), 'restarted')
  void inFlight
  await until('the events client back', () => reopened >= 2 && events.state === 'open', 15_000)
  await until('the realtime client back', () => realtime.connection.state === 'open', 15_000)
  await events.routes.action.auth({ token: 'valid' })
  for (let i = 0; news.length < 2; i++) {
    assert.ok(i < 100, 'the realtime client never got an event after the restart')
    await events.routes.action.emitAll({ topic: 'news', data: { hi: 2 } })
    await sleep(50)
  }
  assert.deepEqual(news[1], { hi: 2 })
  // Unsubscribing for good: no more events.
  realtime.unsubscribe('news')
  await sleep(100)
  await events.routes.action.emitAll({ topic: 'news', data: { hi: 3 } })
  await sleep(200)
  assert.equal(news.filter((n) => n.hi === 3).length, 0)
  check('reconnect-resubscribe')

  // ---- closing rejects what waits ----------------------------------------------------------------------------
  events.close()
  const afterClose = await rejection(events.routes.action.prim())
  assert.equal(afterClose.name, 'ConnectionClosedError')
  realtime.close()
  check('close')

  // ---- every captured frame fits the schema file -------------------------------------------------------------
  const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true })
  ajv.addSchema(JSON.parse(fs.readFileSync(schemaPath!, 'utf8')))
  const failures: string[] = []
  const counts: Record<string, number> = {}
  for (const { channel, text } of received) {
    let frame: unknown
    try {
      frame = JSON.parse(text)
    } catch {
      frame = text
    }
    const defs = [`${channel}.inbound`]
    if (typeof frame === 'object' && frame !== null && !Array.isArray(frame)) {
      const f = frame as Record<string, unknown>
      if (f.action === 'pikku-rpc-request') defs.push(`${channel}.capability.${f.funcName}.request`)
      else
        for (const property of ['action', 'type'])
          if (typeof f[property] === 'string')
            defs.push(`${channel}.route.${property}.${f[property]}.${'errorName' in f ? 'errorFrame' : 'replyFrame'}`)
    }
    for (const def of defs) {
      const validate = ajv.getSchema(`urn:pikku:channels#/$defs/${def}`)
      if (!validate) {
        failures.push(`no schema ${def} for ${text.slice(0, 200)}`)
        continue
      }
      counts[def] = (counts[def] ?? 0) + 1
      if (!validate(frame)) failures.push(`${def}: ${text.slice(0, 200)}: ${ajv.errorsText(validate.errors)}`)
    }
  }
  // A frame that breaks its schema is caught.
  const create = ajv.getSchema('urn:pikku:channels#/$defs/events.route.action.create.replyFrame')!
  assert.equal(create({ action: 'create', id: 'one', title: 'x' }), false)
  assert.deepEqual(failures, [])
  check('schema')

  process.stdout.write(JSON.stringify({ done: true, checks, validated: received.length, counts }) + '\n')
  process.exit(0)
}

setTimeout(() => {
  process.stderr.write('e2e: timed out\n')
  process.exit(3)
}, 60_000).unref()

main().catch((error) => {
  process.stderr.write('e2e failed: ' + (error instanceof Error ? error.stack : String(error)) + '\n')
  process.exit(1)
})
