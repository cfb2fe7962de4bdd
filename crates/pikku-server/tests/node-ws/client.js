// Connects with Node's `ws` client, offering subprotocols, and prints one JSON line for the Rust test to check:
// {"protocol": <the negotiated subprotocol>, "first": <the first text frame>} or {"error": <why it failed>}.
// Usage: node client.js <ws-url> <protocol>[,<protocol>...]
"use strict";
const WebSocket = require("ws");

const [url, offered] = process.argv.slice(2);
const protocols = offered ? offered.split(",") : [];
const ws = new WebSocket(url, protocols);
const done = (result) => {
  console.log(JSON.stringify(result));
  ws.terminate();
  process.exit(0);
};
const timer = setTimeout(() => done({ error: "timed out" }), 5000);
ws.on("message", (data) => {
  clearTimeout(timer);
  done({ protocol: ws.protocol, first: data.toString() });
});
ws.on("error", (err) => {
  clearTimeout(timer);
  done({ error: err.message });
});
