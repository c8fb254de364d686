// Room clients for bench/lab.py: stock y-websocket providers reaching a notebook the way
// JupyterLab's docprovider does, through a Jupyter Server's origin.
//
//   node bench/lab_clients.mjs      (driven by bench/lab.py: JSON lines on stdin and stdout)
//
// Every command is one JSON line {"id", "cmd", ...}, answered by {"id", "ok": true, ...} or
// {"id", "ok": false, "error"}. Commands:
//
//   open   {name, base, token, path, cells, timeoutMs}
//          PUT <base>/api/collaboration/session/<path> {"format": "json", "type": "notebook"},
//          then a WebsocketProvider on <ws base>/api/collaboration/room/json:notebook:<fileId>
//          with ?sessionId=&token=; answers once the provider is synced and its document holds
//          `cells` cells: {ms (PUT sent to that moment), putMs, cells, bytes, reconnects}. As
//          in JupyterLab, a close with 1003 or 4xxx ends it (an error); after any other close
//          y-websocket reconnects (counted in `reconnects`).
//   type   {writer, reader, cell, count, gapMs, timeoutMs}
//          `count` keystrokes: the writer inserts one character at the end of cell `cell`'s
//          source; the latency is until the reader's copy of that source has it. One keystroke
//          in flight at a time, `gapMs` between them (a fast typist). Answers {latencies} (ms).
//   close  {name}    destroy that client's provider
//   exit
//
// Both clients of a `type` live in this process, so both ends are timed by one clock
// (performance.now). The packages are tests/node's (npm ci --prefix tests/node).

import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import readline from 'node:readline'
import { performance } from 'node:perf_hooks'

const MODULES = join(dirname(fileURLToPath(import.meta.url)), '..', 'tests', 'node', 'node_modules')

// An ES module of tests/node's packages by its "import" export (this script lives outside
// tests/node, so bare specifiers would not resolve; the packages' own imports still do).
const load = async (name) => {
  const pkg = JSON.parse(readFileSync(join(MODULES, name, 'package.json'), 'utf8'))
  let entry = pkg.exports?.['.'] ?? pkg.exports ?? pkg.module ?? pkg.main
  if (typeof entry === 'object') entry = entry.import ?? entry.default ?? entry.module
  return import(pathToFileURL(join(MODULES, name, entry)).href)
}

const Y = await load('yjs')
const { WebsocketProvider, messageAuth } = await load('y-websocket')
const WebSocket = (await load('ws')).default

const clients = new Map()

const send = (message) => process.stdout.write(JSON.stringify(message) + '\n')

const deadline = (ms, what) => new Promise((resolve, reject) => {
  setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms)
})

const cellCount = (doc) => doc.getArray('cells').length

const open = async ({ name, base, token, path, cells, timeoutMs = 120000 }) => {
  if (clients.has(name)) throw new Error(`client ${name} exists`)
  const start = performance.now()
  const encoded = path.split('/').map(encodeURIComponent).join('/')
  const response = await fetch(`${base}/api/collaboration/session/${encoded}`, {
    method: 'PUT',
    headers: { Authorization: `token ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ format: 'json', type: 'notebook' })
  })
  const body = await response.text()
  if (!response.ok) throw new Error(`session PUT ${response.status}: ${body.slice(0, 300)}`)
  const putMs = performance.now() - start
  const session = JSON.parse(body)
  const doc = new Y.Doc()
  const wsBase = base.replace(/^http/, 'ws') + '/api/collaboration/room'
  const provider = new WebsocketProvider(wsBase, `json:notebook:${session.fileId}`, doc, {
    WebSocketPolyfill: WebSocket,
    params: { sessionId: session.sessionId, token },
    disableBc: true // several clients in this process must sync through the server only
  })
  // Type 2 is jupyter-collaboration's raw message (JSON strings), not y-protocols' auth.
  provider.messageHandlers[messageAuth] = () => {}
  const client = { doc, provider, closed: null, reconnects: 0 }
  clients.set(name, client)
  // JupyterLab's provider gives up on 1003 and 4xxx (a dialog); on other codes y-websocket
  // reconnects with backoff, and so does this one (counted).
  provider.on('connection-close', (event) => {
    if (!event) return
    if (event.code === 1003 || (event.code >= 4000 && event.code < 5000)) {
      client.closed = `${event.code} ${event.reason ?? ''}`
    } else {
      client.reconnects += 1
    }
  })
  const ready = () => provider.synced && cellCount(doc) >= cells
  await Promise.race([
    new Promise((resolve, reject) => {
      const check = () => {
        if (ready()) {
          doc.off('update', check)
          provider.off('synced', check)
          clearInterval(watch)
          resolve()
        }
      }
      // A close the provider would retry for ever is reported instead.
      const watch = setInterval(() => {
        if (client.closed) reject(new Error(`room closed: ${client.closed}`))
      }, 50)
      doc.on('update', check)
      provider.on('synced', check)
      check()
    }),
    deadline(timeoutMs, `open ${path}`)
  ])
  const ms = performance.now() - start
  return {
    ms,
    putMs,
    cells: cellCount(doc),
    bytes: Y.encodeStateAsUpdate(doc).length,
    reconnects: client.reconnects
  }
}

const source = (client, cell) => client.doc.getArray('cells').get(cell).get('source')

const type = async ({ writer, reader, cell, count, gapMs = 30, timeoutMs = 10000 }) => {
  const from = clients.get(writer)
  const to = clients.get(reader)
  if (!from || !to) throw new Error('type needs two open clients')
  const typed = source(from, cell)
  const seen = source(to, cell)
  const latencies = []
  for (let i = 0; i < count; i++) {
    const expected = seen.length + 1
    let observer
    const arrived = new Promise((resolve) => {
      observer = () => { if (seen.length >= expected) resolve(performance.now()) }
      seen.observe(observer)
    })
    const start = performance.now()
    typed.insert(typed.length, String.fromCharCode(97 + (i % 26)))
    try {
      latencies.push((await Promise.race([arrived, deadline(timeoutMs, `keystroke ${i}`)])) - start)
    } finally {
      seen.unobserve(observer)
    }
    await new Promise((resolve) => setTimeout(resolve, gapMs))
  }
  return { latencies }
}

const close = ({ name }) => {
  const client = clients.get(name)
  if (client) {
    client.provider.destroy()
    client.doc.destroy()
    clients.delete(name)
  }
  return {}
}

const commands = {
  open,
  type,
  close,
  exit: () => {
    setImmediate(() => shutdown(0))
    return {}
  }
}

const shutdown = (code) => {
  for (const name of [...clients.keys()]) close({ name })
  process.exit(code)
}

const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
input.on('line', async (line) => {
  if (!line.trim()) return
  const { id, cmd, ...args } = JSON.parse(line)
  try {
    const run = commands[cmd]
    if (!run) throw new Error(`unknown command ${JSON.stringify(cmd)}`)
    send({ id, ok: true, ...(await run(args)) })
  } catch (error) {
    send({ id, ok: false, error: error?.message ?? String(error) })
  }
})
input.on('close', () => shutdown(0))
send({ event: 'ready' })
