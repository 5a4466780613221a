import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errors } from './schemas.js'

const Status = (status: string, description: string) => Type.Object({ status: Type.Literal(status) }, { additionalProperties: false, description, examples: [{ status }] })

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/health', {
    schema: {
      summary: 'Liveness: 200 while the process runs',
      description: 'Touches nothing else, so a database outage does not make the process look dead (the Docker HEALTHCHECK uses it).',
      tags: ['ops'],
      response: { 200: Status('ok', 'The process runs.'), ...errors() }
    }
  }, async () => ({ status: 'ok' as const }))

  app.get('/ready', {
    schema: {
      summary: 'Readiness: 200 when the database answers, else 503',
      description: 'Sends the database one trivial query; a load balancer routes traffic here only while it answers.',
      tags: ['ops'],
      response: { 200: Status('ready', 'The database answers.'), ...errors(503) }
    }
  }, async () => {
    await app.queries.ping()
    return { status: 'ready' as const }
  })
}

export default healthRoutes
