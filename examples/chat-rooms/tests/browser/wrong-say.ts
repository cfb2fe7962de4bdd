// Wrong inputs for the chat page's generated client: every line that ends in an error-marker comment naming its
// route must fail to compile, and no other line may (checked by tests/browser.rs).
import { ChatClient } from '../../static/client/channels.gen'

export async function wrong(client: ChatClient): Promise<void> {
  await client.routes.action.say({ txt: 1 }) // error: say
  await client.routes.action.say({ text: 1 }) // error: say
  await client.routes.action.rename({}) // error: rename
  client.getRoute('action').send('say', { name: 'ada' }) // error: say
  await client.call('action', 'shout', { text: 'hi' }) // error: shout
  const name: number = (await client.routes.action.rename({ name: 'bob' })).name // error: rename
  new ChatClient({ baseUrl: 'ws://127.0.0.1:4002', opening: { name: 'ada' } }) // error: opening
  void name
}
