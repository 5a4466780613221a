// The resource service (resource-server/app.ts) exactly as it is built, from
// this process's environment, plus the bench's own route and listening line
// (bench/served.ts; no database on the measured route, so 0 queries).
import { buildApp } from '../resource-server/app.js'
import { serveForBench } from './served.js'

const { app, config } = await buildApp()

await serveForBench(app, { host: config.HOST, port: config.PORT })
