// Opens the database (PGlite by default, pg with DATABASE_URL, the revocation
// listener on DATABASE_LISTEN_URL when set), migrates it, seeds an empty
// embedded one with the demo staff, and decorates the app with the named
// queries. Routes see `app.queries`, never SQL. On close it
// waits for the requests that write to finish before closing the database.
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { databaseOptions, openDatabase, type Database } from '../src/db/database.js'
import { migrate } from '../src/db/migrate.js'
import { createQueries, type Queries } from '../src/db/queries.js'
import { seed } from '../src/db/seed.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Database
    queries: Queries
  }
}

export interface DatabasePluginOptions {
  /** A database opened by the caller (tests share one across apps); not closed with the app. */
  database?: Database | undefined
}

/** How long the close waits for writing requests; the server's own grace (src/server.ts) is longer. */
export const WRITES_DRAIN_MS = 5_000
const readOnlyMethods: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS'])

type Hook = (request: FastifyRequest, reply: FastifyReply, ...rest: never[]) => unknown
const hooksOf = (hooks: unknown): Hook[] => hooks === undefined ? [] : Array.isArray(hooks) ? hooks as Hook[] : [hooks as Hook]

export default fp<DatabasePluginOptions>(async function database (app, opts) {
  const db = opts.database ?? await openDatabase(databaseOptions(app.config))

  // The server's close waits for connections, not for handlers: a request
  // whose client went away runs on after its socket is gone, and a login
  // half done when the database closed would keep its attempt counted. So
  // every route that writes holds the database open from its first hook
  // until its handler has finished, or its refusal by a hook is sent (reads
  // are not held: one cut short loses nothing).
  const writing = new Set<FastifyRequest>()
  let drained: (() => void) | undefined
  const release = (request: FastifyRequest): void => {
    if (writing.delete(request) && writing.size === 0) drained?.()
  }
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    if (methods.every((method) => readOnlyMethods.has(method))) return
    const handler = route.handler
    route.handler = async function (request, reply) {
      try {
        return await handler.call(this, request, reply)
      } finally {
        release(request)
      }
    }
    route.onRequest = [(request, _reply, done) => { writing.add(request); done() }, ...hooksOf(route.onRequest)] as RouteOptions['onRequest']
    route.onSend = [...hooksOf(route.onSend), (request, _reply, payload, done) => { release(request); done(null, payload) }] as RouteOptions['onSend']
  })
  app.addHook('onClose', async () => {
    if (writing.size > 0) {
      app.log.info({ requests: writing.size }, 'waiting for requests that write before closing the database')
      let timer: NodeJS.Timeout | undefined
      await new Promise<void>((resolve) => {
        drained = resolve
        timer = setTimeout(resolve, WRITES_DRAIN_MS)
      })
      clearTimeout(timer)
      if (writing.size > 0) app.log.warn({ requests: writing.size }, 'closing the database with requests still writing')
    }
    if (opts.database === undefined) await db.close()
  })

  const applied = await migrate(db)
  if (applied.length > 0) app.log.info({ applied }, 'database migrated')

  const queries = createQueries(db)
  // First start of an empty embedded database: seed the demo staff. A server
  // database is seeded explicitly (npm run db:seed), never behind your back.
  if (db.driver === 'pglite' && await queries.countStaff() === 0) {
    await seed(db)
    app.log.warn('seeded the demo staff (demo passwords are for local use only)')
  }

  app.decorate('db', db)
  app.decorate('queries', queries)
}, { name: 'tokenlab-database', dependencies: ['tokenlab-config'] })
