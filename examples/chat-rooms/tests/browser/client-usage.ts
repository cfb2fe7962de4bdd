// What the page does with the generated client, in TypeScript: it must compile under --strict, so the failures of
// wrong-say.ts come from the wrong inputs alone (checked by tests/browser.rs).
import {
  ChatClient,
  PikkuError,
  isErrorFrame,
  type ChatInbound,
  type WebSocketConstructor,
} from '../../static/client/channels.gen'

declare const ChatSocket: WebSocketConstructor
declare function log(...values: unknown[]): void

export async function usage(): Promise<string> {
  const client = new ChatClient({
    baseUrl: 'http://127.0.0.1:4002',
    opening: { room: 'lobby' },
    protocols: ['pikku.v1', 'token.ada'],
    WebSocket: ChatSocket,
    reconnect: { initialDelayMs: 250, maxDelayMs: 5000 },
  })
  client.onStateChange((state) => log(state satisfies 'connecting' | 'open' | 'reconnecting' | 'closed'))
  client.subscribe((frame: ChatInbound) => {
    if (isErrorFrame(frame)) return log(frame.errorName, frame.error)
    if ('topic' in frame && frame.data.type === 'message') log(frame.data.name, frame.data.text)
    if ('type' in frame && frame.type === 'welcome') log(frame.room, frame.name, frame.members)
  })
  const said: undefined = await client.routes.action.say({ text: 'hi' })
  try {
    await client.routes.action.rename({ name: '' })
  } catch (error) {
    if (error instanceof PikkuError) log(error.name, error.message, error.details)
  }
  const renamed = await client.routes.action.rename({ name: 'bob' })
  client.close()
  return renamed.name + String(said)
}
