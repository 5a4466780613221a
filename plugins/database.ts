// Opens the database (PGlite by default, pg with DATABASE_URL), migrates it,
// seeds an empty embedded one with the demo staff, and decorates the app
// with the named queries. Routes see `app.queries`, never SQL.
import fp from 'fastify-plugin'
import { openDatabase, type Database } from '../src/db/database.js'
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

export default fp<DatabasePluginOptions>(async function database (app, opts) {
  const db = opts.database ?? await openDatabase({ url: app.config.DATABASE_URL, dataDir: app.config.DATA_DIR })
  if (opts.database === undefined) app.addHook('onClose', async () => { await db.close() })

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
