// A stock Yjs client (y-websocket's WebsocketProvider) that the Python tests drive.
//
// Commands arrive as JSON lines on stdin, each with an "id" and a "cmd"; every command is
// answered with {"id", "ok": true, ...} or {"id", "ok": false, "error"}. Events the client did
// not ask for ("ready", "status", "synced", "permission-denied", "update", "awareness", "close",
// "closed", "connection-error") are pushed as {"event": ...} lines. See tests/support/nodeclient.py.
//
//   node yclient.mjs [--notebook] [--url ws://127.0.0.1:PORT/ws/yjs --room NAME [--token KEY]]
//
// Without --url the client starts in local mode: every command works on its document, and a
// "connect" command attaches the provider later.
//
// With --notebook the document is the Y.Doc of a YNotebook from @jupyter/ydoc (the model
// JupyterLab binds to a collaborative notebook): every change of the notebook and of each of its
// cells is computed as JupyterLab computes it (their `changed` signals, getChanges) and pushed
// as a "notebook-change" / "cell-change" event; anything reported through console.error (what
// y-protocols does with an exception thrown while an update is applied, and Lumino with one
// thrown by a signal's slot) becomes an "error" event. Like JupyterLab's CodeCell widget
// (onStateChanged), a code cell whose execution count becomes a number while its state is not
// idle is set idle by this client.

import * as Y from 'yjs'
import { WebsocketProvider, messageAuth, messageAwareness } from 'y-websocket'
import * as authProtocol from 'y-protocols/auth'
import * as awarenessProtocol from 'y-protocols/awareness'
import WebSocket from 'ws'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import readline from 'node:readline'
import { parseArgs } from 'node:util'

const { values: options } = parseArgs({
  options: {
    url: { type: 'string' },
    room: { type: 'string' },
    token: { type: 'string' },
    notebook: { type: 'boolean' }
  }
})

const send = (message) => {
  process.stdout.write(JSON.stringify(message) + '\n')
}
const emit = (event, fields = {}) => send({ event, ...fields })

const notebook = options.notebook ? await watchedNotebook() : null
const doc = notebook !== null ? notebook.ydoc : new Y.Doc()
const awareness = new awarenessProtocol.Awareness(doc)
let provider = null

// --- A YNotebook, watched as JupyterLab uses it ---------------------------------------------

async function watchedNotebook () {
  const { YNotebook } = await import('@jupyter/ydoc')
  console.error = (...args) => {
    const error = args.find((arg) => arg instanceof Error)
    emit('error', { message: args.map(String).join(' '), stack: error?.stack ?? null })
  }
  const model = new YNotebook()
  const watched = new WeakSet()
  const watchCell = (cell) => {
    if (watched.has(cell)) return
    watched.add(cell)
    cell.changed.connect((_cell, change) => {
      const summary = { cellId: cell.getId(), keys: Object.keys(change) }
      if (change.executionCountChange) summary.executionCount = change.executionCountChange
      if (change.executionStateChange) summary.executionState = change.executionStateChange
      emit('cell-change', summary)
      // JupyterLab's CodeCell widget: a count arrived, so the cell is no longer running.
      if (change.executionCountChange && change.executionCountChange.newValue !== null) {
        if (cell.executionState !== 'idle') {
          cell.executionState = 'idle'
          emit('set-idle', { cellId: cell.getId() })
        }
      }
    })
  }
  model.cells.forEach(watchCell)
  model.changed.connect((_model, change) => {
    emit('notebook-change', { keys: Object.keys(change) })
    if (change.cellsChange) model.cells.forEach(watchCell)
  })
  return model
}

// --- Document paths and values ------------------------------------------------------------

const ROOT_TYPES = {
  map: (name) => doc.getMap(name),
  text: (name) => doc.getText(name),
  array: (name) => doc.getArray(name),
  xml: (name) => doc.getXmlFragment(name)
}

const getRoot = (name, type) => {
  const make = ROOT_TYPES[type]
  if (!make) throw new Error(`unknown root type ${JSON.stringify(type)}`)
  return make(name)
}

// A path is [root, key-or-index, ...]; the root's type is `rootType`, else `fallback`.
const resolve = (path, rootType, fallback) => {
  if (typeof path === 'string') path = [path]
  if (!Array.isArray(path) || path.length === 0) throw new Error('path must be a non-empty list')
  let node = getRoot(path[0], rootType || (path.length === 1 ? fallback : 'map'))
  for (let i = 1; i < path.length; i++) {
    const step = path[i]
    let next
    if (node instanceof Y.Map) {
      next = node.get(String(step))
    } else if (node instanceof Y.Array) {
      if (!Number.isInteger(step)) throw new Error(`array index expected at ${JSON.stringify(path.slice(0, i + 1))}`)
      next = node.get(step)
    } else {
      throw new Error(`${JSON.stringify(path.slice(0, i))} is not a map or an array`)
    }
    if (next === undefined) throw new Error(`nothing at ${JSON.stringify(path.slice(0, i + 1))}`)
    node = next
  }
  return node
}

const expect = (node, type, path) => {
  if (!(node instanceof type)) {
    throw new Error(`${JSON.stringify(path)} is not a ${type.name}`)
  }
  return node
}

// JSON values stay JSON; {"$text"}, {"$map"}, {"$array"} make shared types.
const toShared = (value) => {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    if ('$text' in value) return new Y.Text(String(value.$text))
    if ('$map' in value) {
      const map = new Y.Map()
      for (const [k, v] of Object.entries(value.$map)) map.set(k, toShared(v))
      return map
    }
    if ('$array' in value) {
      const array = new Y.Array()
      array.push(value.$array.map(toShared))
      return array
    }
  }
  return value
}

const toJSON = (value) => (value instanceof Y.AbstractType ? value.toJSON() : value)

// --- Operations (also usable inside "batch") ----------------------------------------------

const operations = {
  'insert-text': ({ path, index, text, rootType }) => {
    const target = expect(resolve(path, rootType, 'text'), Y.Text, path)
    target.insert(index ?? target.length, text)
  },
  'delete-text': ({ path, index, length, rootType }) => {
    expect(resolve(path, rootType, 'text'), Y.Text, path).delete(index, length)
  },
  set: ({ path, key, value, rootType }) => {
    expect(resolve(path, rootType, 'map'), Y.Map, path).set(String(key), toShared(value))
  },
  'delete-key': ({ path, key, rootType }) => {
    expect(resolve(path, rootType, 'map'), Y.Map, path).delete(String(key))
  },
  'array-insert': ({ path, index, values, rootType }) => {
    const target = expect(resolve(path, rootType, 'array'), Y.Array, path)
    target.insert(index ?? target.length, values.map(toShared))
  },
  'array-delete': ({ path, index, length, rootType }) => {
    expect(resolve(path, rootType, 'array'), Y.Array, path).delete(index, length ?? 1)
  }
}

const states = () => {
  const all = {}
  for (const [clientId, state] of awareness.getStates()) all[clientId] = state
  return all
}

const status = () => ({
  clientId: doc.clientID,
  connected: provider !== null && provider.wsconnected,
  synced: provider !== null && provider.synced
})

// --- The provider -------------------------------------------------------------------------

const connect = ({ url, room, token, params }) => {
  if (provider !== null) {
    provider.connect()
    return
  }
  if (!url || !room) throw new Error('connect needs "url" and "room"')
  const query = { ...(params || {}) }
  if (token) query.token = token
  provider = new WebsocketProvider(url, room, doc, {
    WebSocketPolyfill: WebSocket,
    awareness,
    params: query,
    disableBc: true // peers in this process must not sync around the server
  })
  // The stock auth handler only console.warns; report the reason instead.
  // Type 2 is y-protocols' auth message (0 = permission denied, then a reason) and also
  // jupyter-collaboration's raw message (a JSON string): report either.
  provider.messageHandlers[messageAuth] = (_encoder, decoder, _provider) => {
    const rest = decoding.readTailAsUint8Array(decoder)
    if (rest.length > 0 && rest[0] === 0) {
      authProtocol.readAuthMessage(decoding.createDecoder(rest), doc, (_doc, reason) => {
        emit('permission-denied', { reason })
      })
    } else {
      emit('raw', { message: decoding.readVarString(decoding.createDecoder(rest)) })
    }
  }
  provider.on('status', ({ status }) => emit('status', { status }))
  provider.on('synced', (synced) => emit('synced', { synced }))
  provider.on('connection-close', (event) => {
    // event is null when the client closed the connection itself
    emit('close', event ? { code: event.code, reason: String(event.reason ?? '') } : { code: null, local: true })
  })
  provider.on('closed', ({ code, reason }) => emit('closed', { code, reason: String(reason ?? '') }))
  provider.on('connection-error', (event) => {
    emit('connection-error', { message: String(event?.message ?? event?.error ?? event?.type ?? event) })
  })
}

doc.on('update', (update, origin) => {
  if (provider !== null && origin === provider) emit('update', { bytes: update.length })
})

awareness.on('change', ({ added, updated, removed }, origin) => {
  if (origin !== 'local') emit('awareness', { added, updated, removed })
})

const waitSynced = (timeout) => new Promise((resolve, reject) => {
  if (provider === null) return reject(new Error('not connected'))
  if (provider.synced) return resolve()
  const done = (error) => {
    clearTimeout(timer)
    provider.off('synced', onSynced)
    provider.off('closed', onClosed)
    error ? reject(error) : resolve()
  }
  const onSynced = (synced) => { if (synced) done() }
  const onClosed = ({ code, reason }) => done(new Error(`closed by the server: ${code} ${reason}`))
  const timer = setTimeout(() => done(new Error(`not synced after ${timeout} ms`)), timeout)
  provider.on('synced', onSynced)
  provider.on('closed', onClosed)
})

// --- Commands -----------------------------------------------------------------------------

const commands = {
  connect: (args) => { connect(args); return status() },
  // What @jupyter/docprovider's connectToForkDoc and reconnect do: the provider destroyed, a new
  // one on another room (or the same) with the same Y document.
  'switch-room': (args) => {
    if (provider !== null) provider.destroy()
    provider = null
    connect(args)
    return status()
  },
  status: () => status(),
  'wait-synced': async ({ timeoutMs = 10000 }) => { await waitSynced(timeoutMs); return status() },
  get: ({ roots }) => {
    const named = Array.isArray(roots) ? Object.fromEntries(roots.map((r) => [r, 'map'])) : roots
    if (!named || typeof named !== 'object') throw new Error('get needs "roots"')
    const result = {}
    for (const [name, type] of Object.entries(named)) result[name] = toJSON(getRoot(name, type))
    return { doc: result }
  },
  'encode-state': () => ({ update: Buffer.from(Y.encodeStateAsUpdate(doc)).toString('base64') }),
  'state-vector': () => ({ stateVector: Buffer.from(Y.encodeStateVector(doc)).toString('base64') }),
  batch: ({ ops }) => {
    doc.transact(() => {
      for (const op of ops) {
        const run = operations[op.op]
        if (!run) throw new Error(`unknown operation ${JSON.stringify(op.op)}`)
        run(op)
      }
    })
    return {}
  },
  // jupyter-collaboration's save request: type 2, the string "save", a number.
  'send-save': ({ saveId }) => {
    if (provider === null || provider.ws === null) throw new Error('not connected')
    const encoder = encoding.createEncoder()
    encoding.writeVarUint(encoder, messageAuth)
    encoding.writeVarString(encoder, 'save')
    encoding.writeVarUint(encoder, saveId)
    provider.ws.send(encoding.toUint8Array(encoder))
    return {}
  },
  'set-awareness': ({ state }) => { awareness.setLocalState(state); return {} },
  // An awareness message with these entries, as any peer may send one (y-protocols lets a peer
  // name any client id with any clock): [{clientId, clock, state}], state null for a removal.
  'send-awareness': ({ entries }) => {
    if (provider === null || provider.ws === null) throw new Error('not connected')
    const update = encoding.createEncoder()
    encoding.writeVarUint(update, entries.length)
    for (const { clientId, clock, state } of entries) {
      encoding.writeVarUint(update, clientId)
      encoding.writeVarUint(update, clock)
      encoding.writeVarString(update, JSON.stringify(state))
    }
    const encoder = encoding.createEncoder()
    encoding.writeVarUint(encoder, messageAwareness)
    encoding.writeVarUint8Array(encoder, encoding.toUint8Array(update))
    provider.ws.send(encoding.toUint8Array(encoder))
    return {}
  },
  'get-awareness': () => ({ clientId: doc.clientID, states: states() }),
  disconnect: () => { if (provider !== null) provider.disconnect(); return status() },
  exit: () => {
    setImmediate(() => shutdown(0))
    return {}
  }
}
for (const [name, run] of Object.entries(operations)) {
  commands[name] = (args) => { doc.transact(() => run(args)); return {} }
}

const handle = async (line) => {
  if (!line.trim()) return
  let message
  try {
    message = JSON.parse(line)
  } catch (error) {
    emit('bad-command', { error: `not JSON: ${error.message}`, line })
    return
  }
  const { id, cmd, ...args } = message
  try {
    const run = commands[cmd]
    if (!run) throw new Error(`unknown command ${JSON.stringify(cmd)}`)
    send({ id, ok: true, ...(await run(args)) })
  } catch (error) {
    send({ id, ok: false, error: error?.message ?? String(error) })
  }
}

const shutdown = (code) => {
  if (provider !== null) provider.destroy()
  process.exit(code)
}

emit('ready', { clientId: doc.clientID })
if (options.url) connect(options)

const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
input.on('line', (line) => { handle(line) })
input.on('close', () => shutdown(0)) // the test process went away
