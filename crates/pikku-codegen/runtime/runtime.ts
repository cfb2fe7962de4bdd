// ---- pikku channel runtime -----------------------------------------------------------------------------------
// A dependency-free client for pikku channels: the API of Pikku's `PikkuWebSocket` (getRoute/send/subscribe,
// binary frames), plus awaited calls matched with their replies in order, queued sends until the socket is open,
// reconnection with backoff, reverse-RPC handlers and the realtime events channel. It uses no DOM or Node types,
// so it compiles with `lib: ["es2022"]` alone and runs in browsers and in Node (pass `WebSocket` from the `ws`
// package where no global one exists, as in Node 20).

/** The part of the WebSocket API the runtime uses; the browser's, Node 22's and the `ws` package's all fit. */
export interface WebSocketLike {
  readonly readyState: number
  binaryType: string
  send(data: string | ArrayBuffer | Uint8Array): void
  close(code?: number, reason?: string): void
  onopen: ((event: any) => void) | null
  onclose: ((event: any) => void) | null
  onerror: ((event: any) => void) | null
  onmessage: ((event: any) => void) | null
}

/** A WebSocket constructor, such as `globalThis.WebSocket` or the default export of `ws`. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike

/** Reconnection with exponential backoff: delay `initialDelayMs * factor^attempt`, at most `maxDelayMs`. */
export interface ReconnectOptions {
  /** Delay before the first attempt (default 250 ms). */
  initialDelayMs?: number
  /** Upper bound of the delay (default 10 s). */
  maxDelayMs?: number
  /** Growth factor per attempt (default 2). */
  factor?: number
  /** Random spread added to each delay, as a fraction of it (default 0.2). */
  jitter?: number
  /** Attempts before giving up and going to `closed` (default: never give up). */
  maxAttempts?: number
}

/** How to open a connection. */
export interface ConnectionOptions {
  /** The full `ws://` or `wss://` URL (`http(s)://` is accepted and converted). */
  url: string
  /** Subprotocols to offer, such as `['pikku.v1', 'token.' + token]`. */
  protocols?: string[]
  /** The WebSocket constructor; defaults to `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor
  /** Reconnect after a close the client did not ask for (default `true`); `false` disables it. */
  reconnect?: boolean | ReconnectOptions
}

/** `connecting` (first attempt), `open`, `reconnecting` (waiting for or making another attempt), `closed`. */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed'

/** One entry of a validation error's `details`: a JSON Pointer into the input and what failed there. */
export interface ErrorDetail {
  path: string
  message: string
}

/** An error frame as the server sends it. */
export interface ErrorFrame {
  error: string
  errorName: string
  details?: ErrorDetail[]
  debug?: string
  [key: string]: unknown
}

/**
 * The error a call rejects with: `name` is the server's error class (`UnauthorizedError`, `ForbiddenError`, …),
 * `message` its text, `details` the validation details. The runtime's own failures use the names
 * `ConnectionLostError` (the socket closed before the reply came) and `ConnectionClosedError` (the client was
 * closed).
 */
export class PikkuError extends Error {
  /** The error class: the frame's `errorName`. */
  override readonly name: string
  /** Validation details, when the server sent any. */
  readonly details?: ErrorDetail[]
  /** The routing key the error answered, such as `{ property: 'action', value: 'create' }`. */
  readonly route?: { property: string; value: string }
  /** The whole error frame, when the error came from the server. */
  readonly frame?: ErrorFrame

  constructor(
    name: string,
    message: string,
    extra: { details?: ErrorDetail[]; route?: { property: string; value: string }; frame?: ErrorFrame } = {}
  ) {
    super(message)
    this.name = name
    if (extra.details !== undefined) this.details = extra.details
    if (extra.route !== undefined) this.route = extra.route
    if (extra.frame !== undefined) this.frame = extra.frame
  }
}

/** Whether `frame` is an error frame (it has a string `errorName`). */
export function isErrorFrame(frame: unknown): frame is ErrorFrame {
  return isObject(frame) && typeof frame['errorName'] === 'string'
}

/** The reply shape of a route: how its reply frame carries the handler's value. */
export type ReplyShape = 'none' | 'merged' | 'result' | 'dynamic'

/** A reverse-RPC frame sent by the server. */
export interface RpcRequestFrame {
  action: 'pikku-rpc-request'
  id: string
  funcName: string
  data?: unknown
}

/** What a capability handler gets beside its input: the call's id and a way to ask the server to wait. */
export interface RpcCall {
  readonly id: string
  readonly funcName: string
  /**
   * Sends `pikku-rpc-pending`: the server stops the call's timeout and waits for the answer (or the end of the
   * connection), for calls that wait on a person.
   */
  pending(reason?: string): void
}

/** An error a capability handler may throw to choose the error name the server sees. */
export class RpcError extends Error {
  override readonly name: string
  constructor(name: string, message: string) {
    super(message)
    this.name = name
  }
}

type Listener<T> = (value: T) => void

interface Pending {
  resolve(frame: Record<string, unknown>): void
  reject(error: PikkuError): void
}

interface Outgoing {
  data: string | ArrayBuffer | Uint8Array
  /** For a routed message: where its reply is expected. */
  route?: { property: string; value: string; pending: Pending | null }
}

const OPEN = 1

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

const timers = globalThis as unknown as {
  setTimeout(callback: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

function toWsUrl(url: string): string {
  if (url.startsWith('http://')) return 'ws://' + url.slice('http://'.length)
  if (url.startsWith('https://')) return 'wss://' + url.slice('https://'.length)
  return url
}

/** Takes the handler's value out of a reply frame, as `shape` says it was put in. */
export function unwrapReply(property: string, frame: Record<string, unknown>, shape: ReplyShape | undefined): unknown {
  const keys = Object.keys(frame)
  if (shape === 'none') return undefined
  if (shape === 'result') return frame['result']
  if (shape !== 'merged' && keys.length === 2 && 'result' in frame) return frame['result']
  if (shape !== 'merged' && keys.length === 1) return shape === 'dynamic' ? {} : undefined
  const value: Record<string, unknown> = {}
  for (const key of keys) if (key !== property) value[key] = frame[key]
  return value
}

/**
 * The handle `getRoute(property)` returns, as in Pikku's client: `send(value, data)` sends
 * `{[property]: value, ...data}`, `subscribe(value, cb)` receives every frame whose `property` member is `value`
 * (replies and error frames of that route).
 */
export class PikkuRouteHandler {
  private readonly subscriptions = new Map<string, Set<Listener<any>>>()

  constructor(
    private readonly connection: PikkuConnection,
    readonly property: string
  ) {}

  /** Sends `{[property]: value, ...data}`; its reply goes to this route's subscribers. */
  send(value: string, data?: unknown): void {
    this.connection.sendRouted(this.property, value, data, null)
  }

  /** Calls `callback` with every frame carrying `value` under this route's property. */
  subscribe(value: string, callback: Listener<any>): void {
    let set = this.subscriptions.get(value)
    if (!set) this.subscriptions.set(value, (set = new Set()))
    set.add(callback)
  }

  /** Removes `callback`, or every subscriber of `value` without one. */
  unsubscribe(value: string, callback?: Listener<any>): void {
    if (callback) this.subscriptions.get(value)?.delete(callback)
    else this.subscriptions.delete(value)
  }

  /** @internal */
  _handleMessage(value: string, frame: Record<string, unknown>): void {
    this.subscriptions.get(value)?.forEach((cb) => cb(frame))
  }
}

/**
 * One channel connection. Keeps Pikku's `PikkuWebSocket` API (`getRoute`, `send`, `sendBinary`, `subscribe`,
 * `unsubscribe`, `onBinaryMessage`, `offBinaryMessage`, `onmessage`) and adds `call`, `handle`, connection
 * states, queued sends and reconnection.
 *
 * Pass a `ConnectionOptions` to let the runtime open (and reopen) the socket, or an open or opening WebSocket to
 * wrap it as Pikku's client does (no reconnection then).
 */
export class PikkuConnection {
  /** Called with every raw message event after the runtime handled it, as in Pikku's client. */
  onmessage: ((event: { data: unknown }) => void) | null = null

  private socket: WebSocketLike | null = null
  private currentState: ConnectionState = 'connecting'
  private readonly routes = new Map<string, PikkuRouteHandler>()
  private readonly subscriptions = new Set<Listener<any>>()
  private readonly binarySubscriptions = new Set<Listener<ArrayBuffer>>()
  private readonly stateListeners = new Set<Listener<ConnectionState>>()
  private readonly openListeners = new Set<Listener<{ reconnected: boolean }>>()
  private readonly capabilities = new Map<string, (data: any, call: RpcCall) => unknown>()
  /** Frames sent on every (re)open before the queue: the declared subscriptions. */
  private readonly persistent = new Map<string, { property: string; value: string; data: unknown }>()
  /** Routed messages written and not yet answered, per property, then per value, oldest first. */
  private readonly inFlight = new Map<string, Map<string, (Pending | null)[]>>()
  private queue: Outgoing[] = []
  private attempts = 0
  private everOpened = false
  private closedByClient = false
  private retryTimer: unknown = null
  private readonly options: ConnectionOptions | null

  constructor(target: ConnectionOptions | WebSocketLike) {
    if (typeof (target as WebSocketLike).send === 'function') {
      this.options = null
      this.attach(target as WebSocketLike)
    } else {
      this.options = target as ConnectionOptions
      this.open()
    }
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.currentState
  }

  /** Calls `listener` on every state change; returns a function that removes it. */
  onStateChange(listener: Listener<ConnectionState>): () => void {
    this.stateListeners.add(listener)
    return () => this.stateListeners.delete(listener)
  }

  /** Calls `listener` each time the socket opens (`reconnected` is true after the first time). */
  onOpen(listener: Listener<{ reconnected: boolean }>): () => void {
    this.openListeners.add(listener)
    return () => this.openListeners.delete(listener)
  }

  /** Resolves when the socket is open (at once if it is), rejects if the client is closed first. */
  ready(): Promise<void> {
    if (this.currentState === 'open') return Promise.resolve()
    if (this.currentState === 'closed')
      return Promise.reject(new PikkuError('ConnectionClosedError', 'The connection was closed'))
    return new Promise((resolve, reject) => {
      const off = this.onStateChange((state) => {
        if (state === 'open') {
          off()
          resolve()
        } else if (state === 'closed') {
          off()
          reject(new PikkuError('ConnectionClosedError', 'The connection was closed'))
        }
      })
    })
  }

  /** The route handler of routing property `property` (such as `'action'`). */
  getRoute(property: string | symbol | number): PikkuRouteHandler {
    const key = property.toString()
    let handler = this.routes.get(key)
    if (!handler) this.routes.set(key, (handler = new PikkuRouteHandler(this, key)))
    return handler
  }

  /** Sends `data` as JSON (a default message, or any frame you build yourself). Queued until open. */
  send(data: unknown): void {
    this.write({ data: JSON.stringify(data) })
  }

  /** Sends a binary frame. Queued until open. */
  sendBinary(data: ArrayBuffer | Uint8Array): void {
    this.write({ data })
  }

  /** Calls `callback` with every binary frame. */
  onBinaryMessage(callback: Listener<ArrayBuffer>): void {
    this.binarySubscriptions.add(callback)
  }

  /** Removes `callback`, or every binary subscriber without one. */
  offBinaryMessage(callback?: Listener<ArrayBuffer>): void {
    if (callback) this.binarySubscriptions.delete(callback)
    else this.binarySubscriptions.clear()
  }

  /** Calls `callback` with every text frame: parsed JSON, or the raw text when it is not JSON. */
  subscribe(callback: Listener<any>): void {
    this.subscriptions.add(callback)
  }

  /** Removes `callback`, or every global subscriber without one. */
  unsubscribe(callback?: Listener<any>): void {
    if (callback) this.subscriptions.delete(callback)
    else this.subscriptions.clear()
  }

  /**
   * Sends the routed message `{[property]: value, ...input}` and resolves with the handler's value taken out of
   * the reply (`shape` says how; without it, a frame of only the key and `result` gives `result`, any other
   * frame its members less the key). Rejects with a `PikkuError` on an error frame, or with
   * `ConnectionLostError` when the socket closes before the reply. Replies are matched by order per route.
   */
  call(property: string, value: string, input?: unknown, shape?: ReplyShape): Promise<unknown> {
    return this.callFrame(property, value, input).then((frame) => unwrapReply(property, frame, shape))
  }

  /** As `call`, resolving with the whole reply frame. */
  callFrame(property: string, value: string, input?: unknown): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => this.sendRouted(property, value, input, { resolve, reject }))
  }

  /**
   * Answers the server's reverse calls of `funcName` with `handler`'s result (or promise). A thrown error is sent
   * as `{name, message}` (throw an `RpcError` to pick the name). Calls of a function with no handler are answered
   * with `RPCNotFoundError`. The handler's second argument can tell the server to wait (`call.pending()`).
   * Returns a function that removes the handler.
   */
  handle(funcName: string, handler: (data: any, call: RpcCall) => unknown): () => void {
    this.capabilities.set(funcName, handler)
    return () => this.capabilities.delete(funcName)
  }

  /**
   * Declares a routed message to send now (or at open) and again after every reconnect, under `key`; used for
   * subscriptions the server forgets when the socket closes. Its replies are consumed silently.
   */
  persist(key: string, property: string, value: string, data?: unknown): void {
    this.persistent.set(key, { property, value, data })
    if (this.currentState === 'open') this.writeRouted(property, value, data, null, true)
  }

  /** Forgets a declaration made with `persist`. */
  forget(key: string): void {
    this.persistent.delete(key)
  }

  /** Closes the socket for good: no reconnection, queued sends and pending calls are rejected. */
  close(code = 1000, reason?: string): void {
    this.closedByClient = true
    if (this.retryTimer !== null) timers.clearTimeout(this.retryTimer)
    this.retryTimer = null
    const socket = this.socket
    this.socket = null
    if (socket) {
      socket.onclose = null
      socket.close(code, reason)
    }
    this.failInFlight('ConnectionClosedError', 'The connection was closed')
    const queued = this.queue
    this.queue = []
    for (const item of queued) item.route?.pending?.reject(new PikkuError('ConnectionClosedError', 'The connection was closed'))
    this.setState('closed')
  }

  /** @internal Sends a routed message, remembering where its reply goes. */
  sendRouted(property: string, value: string, data: unknown, pending: Pending | null): void {
    this.writeRouted(property, value, data, pending, false)
  }

  private writeRouted(property: string, value: string, data: unknown, pending: Pending | null, now: boolean): void {
    const frame: Record<string, unknown> = isObject(data) ? { ...data } : {}
    frame[property] = value
    const item: Outgoing = { data: JSON.stringify(frame), route: { property, value, pending } }
    if (now) this.transmit(item)
    else this.write(item)
  }

  private write(item: Outgoing): void {
    if (this.closedByClient) {
      item.route?.pending?.reject(new PikkuError('ConnectionClosedError', 'The connection was closed'))
      return
    }
    if (this.currentState === 'open' && this.queue.length === 0) this.transmit(item)
    else this.queue.push(item)
  }

  private transmit(item: Outgoing): void {
    const socket = this.socket
    if (!socket || socket.readyState !== OPEN) {
      this.queue.push(item)
      return
    }
    if (item.route) {
      const { property, value, pending } = item.route
      let byValue = this.inFlight.get(property)
      if (!byValue) this.inFlight.set(property, (byValue = new Map()))
      let list = byValue.get(value)
      if (!list) byValue.set(value, (list = []))
      list.push(pending)
    }
    socket.send(item.data)
  }

  private open(): void {
    const options = this.options
    if (!options) return
    const Ctor = options.WebSocket ?? (globalThis as unknown as { WebSocket?: WebSocketConstructor }).WebSocket
    if (!Ctor) throw new Error('No WebSocket constructor: pass the `WebSocket` option (for example from the `ws` package)')
    let socket: WebSocketLike
    try {
      socket = options.protocols ? new Ctor(toWsUrl(options.url), options.protocols) : new Ctor(toWsUrl(options.url))
    } catch (error) {
      this.scheduleReconnect()
      return
    }
    this.attach(socket)
  }

  private attach(socket: WebSocketLike): void {
    this.socket = socket
    socket.binaryType = 'arraybuffer'
    socket.onmessage = (event) => this.handleMessage(event)
    socket.onerror = () => {}
    socket.onopen = () => this.handleOpen()
    socket.onclose = () => this.handleClose(socket)
    if (socket.readyState === OPEN) this.handleOpen()
  }

  private handleOpen(): void {
    const reconnected = this.everOpened
    this.everOpened = true
    this.attempts = 0
    this.setState('open')
    for (const { property, value, data } of this.persistent.values()) this.writeRouted(property, value, data, null, true)
    const queued = this.queue
    this.queue = []
    for (const item of queued) this.transmit(item)
    this.openListeners.forEach((cb) => cb({ reconnected }))
  }

  private handleClose(socket: WebSocketLike): void {
    if (this.socket !== socket) return
    this.socket = null
    this.failInFlight('ConnectionLostError', 'The connection closed before the reply arrived')
    if (this.closedByClient) return
    this.scheduleReconnect()
  }

  private scheduleReconnect(): void {
    const option = this.options?.reconnect ?? true
    if (option === false || !this.options) {
      this.closedByClient = true
      const queued = this.queue
      this.queue = []
      for (const item of queued) item.route?.pending?.reject(new PikkuError('ConnectionClosedError', 'The connection was closed'))
      this.setState('closed')
      return
    }
    const settings: ReconnectOptions = option === true ? {} : option
    const maxAttempts = settings.maxAttempts ?? Infinity
    if (this.attempts >= maxAttempts) {
      this.close()
      return
    }
    const base = Math.min(
      (settings.initialDelayMs ?? 250) * Math.pow(settings.factor ?? 2, this.attempts),
      settings.maxDelayMs ?? 10_000
    )
    const delay = base * (1 + Math.random() * (settings.jitter ?? 0.2))
    this.attempts += 1
    this.setState('reconnecting')
    this.retryTimer = timers.setTimeout(() => {
      this.retryTimer = null
      if (!this.closedByClient) this.open()
    }, delay)
  }

  private failInFlight(name: string, message: string): void {
    const inFlight = [...this.inFlight.values()]
    this.inFlight.clear()
    for (const byValue of inFlight)
      for (const list of byValue.values()) for (const pending of list) pending?.reject(new PikkuError(name, message))
  }

  private setState(state: ConnectionState): void {
    if (this.currentState === state) return
    this.currentState = state
    this.stateListeners.forEach((cb) => cb(state))
  }

  private handleMessage(event: { data: unknown }): void {
    const data = event.data
    if (data instanceof ArrayBuffer) {
      this.binarySubscriptions.forEach((cb) => cb(data))
    } else if (ArrayBuffer.isView(data)) {
      const view = data as Uint8Array
      const copy = view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength) as ArrayBuffer
      this.binarySubscriptions.forEach((cb) => cb(copy))
    } else if (typeof data === 'string' && data.length > 0) {
      let parsed: unknown
      let isJson = true
      try {
        parsed = JSON.parse(data)
      } catch {
        isJson = false
      }
      if (!isJson) {
        this.subscriptions.forEach((cb) => cb(data))
      } else if (isObject(parsed) && parsed['action'] === 'pikku-rpc-request' && typeof parsed['id'] === 'string') {
        this.answerRpc(parsed as unknown as RpcRequestFrame)
      } else {
        if (isObject(parsed)) this.dispatchRouted(parsed)
        this.subscriptions.forEach((cb) => cb(parsed))
      }
    }
    if (this.onmessage) this.onmessage(event)
  }

  private dispatchRouted(frame: Record<string, unknown>): void {
    for (const [property, byValue] of this.inFlight) {
      const value = frame[property]
      if (typeof value !== 'string') continue
      const list = byValue.get(value)
      if (!list || list.length === 0) continue
      const pending = list.shift()!
      if (list.length === 0) byValue.delete(value)
      if (pending) {
        if (isErrorFrame(frame))
          pending.reject(
            new PikkuError(frame.errorName, frame.error, {
              ...(Array.isArray(frame.details) ? { details: frame.details } : {}),
              route: { property, value },
              frame,
            })
          )
        else pending.resolve(frame)
      }
      break
    }
    for (const [property, handler] of this.routes) {
      const value = frame[property]
      if (typeof value === 'string' && value) handler._handleMessage(value, frame)
    }
  }

  private answerRpc(request: RpcRequestFrame): void {
    const socket = this.socket
    const answer = (frame: Record<string, unknown>) => {
      // Answers go to the socket that asked: a call does not survive a reconnect.
      if (socket && socket === this.socket && socket.readyState === OPEN) socket.send(JSON.stringify(frame))
    }
    const reply = (body: Record<string, unknown>) => answer({ action: 'pikku-rpc-response', id: request.id, ...body })
    const call: RpcCall = {
      id: request.id,
      funcName: request.funcName,
      pending: (reason?: string) =>
        answer({ action: 'pikku-rpc-pending', id: request.id, ...(reason === undefined ? {} : { reason }) }),
    }
    const handler = this.capabilities.get(request.funcName)
    if (!handler) {
      reply({ ok: false, error: { name: 'RPCNotFoundError', message: `No handler for '${request.funcName}'` } })
      return
    }
    Promise.resolve()
      .then(() => handler(request.data, call))
      .then(
        (result) => reply({ ok: true, result: result === undefined ? null : result }),
        (error: unknown) => {
          const name = error instanceof Error ? error.name : 'Error'
          const message = error instanceof Error ? error.message : String(error)
          reply({ ok: false, error: { name, message } })
        }
      )
  }
}

/**
 * `PikkuConnection` under the name of Pikku's client class, so code written for `@pikku/websocket` ports by
 * changing its import: `new PikkuWebSocket(new WebSocket(url))`.
 */
export class PikkuWebSocket extends PikkuConnection {}

/** A realtime event: what the events channel delivers for a topic. */
export interface TopicEvent<T = unknown> {
  topic: string
  data: T
}

/** How to open the realtime events client. */
export interface EventsOptions extends Omit<ConnectionOptions, 'url'> {
  /** The base URL: the events socket is `<base>/events`, streams are `<base>/events/<topic>`. */
  baseUrl: string
}

/**
 * The realtime events client: subscribes to topics on the events channel (`<base>/events`) and delivers
 * `{topic, data}` events. Subscriptions are re-sent after every reconnect.
 */
export class PikkuEvents<Topics extends Record<string, unknown> = Record<string, unknown>> {
  /** The underlying connection (state, `ready()`, `close()`). */
  readonly connection: PikkuConnection
  private readonly listeners = new Map<string, Set<Listener<any>>>()
  private readonly all = new Set<Listener<TopicEvent>>()
  private readonly baseUrl: string

  constructor(options: EventsOptions) {
    const { baseUrl, ...rest } = options
    this.baseUrl = baseUrl.replace(/\/+$/, '')
    this.connection = new PikkuConnection({ ...rest, url: this.baseUrl + '/events' })
    this.connection.subscribe((frame: unknown) => {
      if (!isObject(frame) || typeof frame['topic'] !== 'string' || !('data' in frame) || 'action' in frame) return
      const event = frame as unknown as TopicEvent
      this.listeners.get(event.topic)?.forEach((cb) => cb(event.data))
      this.all.forEach((cb) => cb(event))
    })
  }

  /** Subscribes to `topic` (sent once per topic, and again after reconnects); `callback` gets each event's data. */
  subscribe<K extends keyof Topics & string>(topic: K, callback: Listener<Topics[K]>): () => void {
    let set = this.listeners.get(topic)
    if (!set) {
      this.listeners.set(topic, (set = new Set()))
      this.connection.persist('topic:' + topic, 'action', 'subscribe', { topic })
    }
    set.add(callback)
    return () => this.unsubscribe(topic, callback)
  }

  /** Removes `callback` (or every callback of `topic`); the last one out unsubscribes the topic. */
  unsubscribe<K extends keyof Topics & string>(topic: K, callback?: Listener<Topics[K]>): void {
    const set = this.listeners.get(topic)
    if (!set) return
    if (callback) set.delete(callback)
    else set.clear()
    if (set.size === 0) {
      this.listeners.delete(topic)
      this.connection.forget('topic:' + topic)
      this.connection.getRoute('action').send('unsubscribe', { topic })
    }
  }

  /** Calls `callback` with every event of every subscribed topic. */
  onEvent(callback: Listener<TopicEvent>): () => void {
    this.all.add(callback)
    return () => this.all.delete(callback)
  }

  /** The Server-Sent Events URL of `topic`: `<base>/events/<topic>` over http(s). */
  streamUrl(topic: string): string {
    const base = this.baseUrl.replace(/^ws(s?):\/\//, 'http$1://')
    return base + '/events/' + encodeURIComponent(topic)
  }

  /** Closes the socket for good. */
  close(): void {
    this.connection.close()
  }
}

/** Options of a generated channel client. */
export interface ClientOptions extends Omit<ConnectionOptions, 'url'> {
  /** The server's base URL (`ws://host:port` or `http://host:port`); the channel's path is appended. */
  baseUrl: string
}

/** Builds a channel URL: route params from `opening` fill the path, the other members go to the query. */
export function channelUrl(baseUrl: string, route: string, opening: Record<string, unknown> | undefined): string {
  const rest: Record<string, unknown> = { ...(opening ?? {}) }
  // A param is a whole segment: `:name` or `{name}`.
  const path = route
    .split('/')
    .map((segment) => {
      const name = segment.startsWith(':')
        ? segment.slice(1)
        : segment.startsWith('{') && segment.endsWith('}')
          ? segment.slice(1, -1)
          : null
      if (name === null || name === '') return segment
      const value = rest[name]
      delete rest[name]
      if (value === undefined || value === null) throw new Error(`Missing route param '${name}' for ${route}`)
      return encodeURIComponent(String(value))
    })
    .join('/')
  const query = Object.keys(rest)
    .filter((key) => rest[key] !== undefined && rest[key] !== null)
    .map((key) => encodeURIComponent(key) + '=' + encodeURIComponent(String(rest[key])))
    .join('&')
  return baseUrl.replace(/\/+$/, '') + path + (query ? '?' + query : '')
}

/** One route of a generated routes map: its input, the reply value, its reply frame and the error frame. */
export interface RouteSpec {
  input: unknown
  reply: unknown
  frame: unknown
}

type RoutesMap = Record<string, Record<string, RouteSpec>>
type CapabilitiesMap = Record<string, { input: unknown; output: unknown }>

/** `getRoute(property)` of a generated client: Pikku's route handler with typed values, inputs and frames. */
export interface TypedRoute<R extends Record<string, RouteSpec>> {
  send<V extends keyof R & string>(value: V, ...data: undefined extends R[V]['input'] ? [data?: R[V]['input']] : [data: R[V]['input']]): void
  subscribe<V extends keyof R & string>(value: V, callback: (frame: R[V]['frame'] | (ErrorFrame & Record<string, V>)) => void): void
  unsubscribe<V extends keyof R & string>(value: V, callback?: (frame: any) => void): void
}

/**
 * The base of every generated channel client: a `PikkuConnection` whose `getRoute`, `call`, `send`, `subscribe`
 * and `handle` are typed by the channel's routes, default handler, inbound frames and capabilities.
 */
export class ChannelClient<
  Routes extends RoutesMap,
  Capabilities extends CapabilitiesMap,
  DefaultInput,
  Inbound,
> {
  /** The untyped connection underneath (states, `ready()`, reconnection, `close()`). */
  readonly connection: PikkuConnection

  constructor(
    url: string,
    options: Omit<ConnectionOptions, 'url'>,
    private readonly shapes: { [P in keyof Routes]: { [V in keyof Routes[P]]: ReplyShape } }
  ) {
    this.connection = new PikkuConnection({ ...options, url })
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.connection.state
  }

  /** Resolves once the socket is open. */
  ready(): Promise<void> {
    return this.connection.ready()
  }

  /** Calls `listener` on every state change; returns a function that removes it. */
  onStateChange(listener: Listener<ConnectionState>): () => void {
    return this.connection.onStateChange(listener)
  }

  /** Calls `listener` each time the socket opens. */
  onOpen(listener: Listener<{ reconnected: boolean }>): () => void {
    return this.connection.onOpen(listener)
  }

  /** Pikku's route handler for `property`, typed. */
  getRoute<P extends keyof Routes & string>(property: P): TypedRoute<Routes[P]> {
    return this.connection.getRoute(property) as unknown as TypedRoute<Routes[P]>
  }

  /** Sends a routed message and resolves with the handler's value; rejects with a `PikkuError`. */
  call<P extends keyof Routes & string, V extends keyof Routes[P] & string>(
    property: P,
    value: V,
    ...input: undefined extends Routes[P][V]['input'] ? [input?: Routes[P][V]['input']] : [input: Routes[P][V]['input']]
  ): Promise<Routes[P][V]['reply']> {
    const shape = this.shapes[property]?.[value]
    return this.connection.call(property, value, input[0], shape) as Promise<Routes[P][V]['reply']>
  }

  /** As `call`, resolving with the whole reply frame. */
  callFrame<P extends keyof Routes & string, V extends keyof Routes[P] & string>(
    property: P,
    value: V,
    ...input: undefined extends Routes[P][V]['input'] ? [input?: Routes[P][V]['input']] : [input: Routes[P][V]['input']]
  ): Promise<Routes[P][V]['frame']> {
    return this.connection.callFrame(property, value, input[0]) as Promise<Routes[P][V]['frame']>
  }

  /** Sends a default (unrouted) message. */
  send(data: DefaultInput): void {
    this.connection.send(data)
  }

  /** Calls `callback` with every text frame (pushes, default replies, route replies, error frames). */
  subscribe(callback: (frame: Inbound) => void): void {
    this.connection.subscribe(callback)
  }

  /** Removes `callback`, or every global subscriber. */
  unsubscribe(callback?: (frame: Inbound) => void): void {
    this.connection.unsubscribe(callback)
  }

  /** Sends a binary frame. */
  sendBinary(data: ArrayBuffer | Uint8Array): void {
    this.connection.sendBinary(data)
  }

  /** Calls `callback` with every binary frame. */
  onBinaryMessage(callback: Listener<ArrayBuffer>): void {
    this.connection.onBinaryMessage(callback)
  }

  /** Removes `callback`, or every binary subscriber. */
  offBinaryMessage(callback?: Listener<ArrayBuffer>): void {
    this.connection.offBinaryMessage(callback)
  }

  /** Answers the server's reverse calls of capability `name`. */
  handle<K extends keyof Capabilities & string>(
    name: K,
    handler: (
      input: Capabilities[K]['input'],
      call: RpcCall
    ) => Capabilities[K]['output'] | Promise<Capabilities[K]['output']>
  ): () => void {
    return this.connection.handle(name, handler)
  }

  /** Closes the connection for good. */
  close(code?: number, reason?: string): void {
    this.connection.close(code, reason)
  }
}
// ---- end of the pikku channel runtime ------------------------------------------------------------------------
