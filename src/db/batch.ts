// Lookups by key that arrive in the same turn of the event loop go to the
// database as one query. Under load many requests are parsed in one turn (one
// poll of the sockets); each still gets an answer read after it arrived, but
// they share the round trip, the statement's execution and the driver's work.

/** The row for one key, or undefined when the database has none. */
export interface BatchedLookup<Key, Row> {
  (key: Key): Promise<Row | undefined>
}

export function batchedLookup<Key, Row> (
  /** One query for all these keys: the rows found, in any order. */
  loadMany: (keys: Key[]) => Promise<Row[]>,
  keyOf: (key: Key) => string,
  /** Must equal `keyOf` of the key the row was found by. */
  rowKeyOf: (row: Row) => string,
  /** Beyond this many keys a turn's lookups are split into several queries. */
  maxBatch = 256
): BatchedLookup<Key, Row> {
  type Waiter = { resolve: (row: Row | undefined) => void, reject: (err: unknown) => void }
  // Keys asked for in this turn, each once however many requests ask for it.
  let pending = new Map<string, { key: Key, waiters: Waiter[] }>()
  let scheduled = false

  function load (batch: Map<string, { key: Key, waiters: Waiter[] }>): void {
    loadMany(Array.from(batch.values(), (entry) => entry.key)).then((rows) => {
      for (const row of rows) {
        const id = rowKeyOf(row)
        const entry = batch.get(id)
        if (entry === undefined) continue
        batch.delete(id)
        for (const waiter of entry.waiters) waiter.resolve(row)
      }
      for (const entry of batch.values()) for (const waiter of entry.waiters) waiter.resolve(undefined)
    }, (err: unknown) => {
      for (const entry of batch.values()) for (const waiter of entry.waiters) waiter.reject(err)
    })
  }

  function flush (): void {
    scheduled = false
    const all = pending
    pending = new Map()
    if (all.size <= maxBatch) {
      load(all)
      return
    }
    let batch = new Map<string, { key: Key, waiters: Waiter[] }>()
    for (const [id, entry] of all) {
      batch.set(id, entry)
      if (batch.size === maxBatch) {
        load(batch)
        batch = new Map()
      }
    }
    if (batch.size > 0) load(batch)
  }

  return function lookup (key: Key): Promise<Row | undefined> {
    return new Promise((resolve, reject) => {
      const id = keyOf(key)
      const entry = pending.get(id)
      if (entry === undefined) pending.set(id, { key, waiters: [{ resolve, reject }] })
      else entry.waiters.push({ resolve, reject })
      if (!scheduled) {
        scheduled = true
        // After the poll phase: every request read from the sockets in this turn has asked by then.
        setImmediate(flush)
      }
    })
  }
}
