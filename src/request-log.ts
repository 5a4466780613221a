// One log line per request, written when its response is finished: method,
// URL, status, time taken, the request id, and for a refusal its code and
// reason (plugins/errors.ts leaves them on the request). Fastify's default
// writes two, one on arrival and one at the end; here the arrival line is
// debug only, for following a request that has not finished. Audit events
// (logins, logouts, refused credentials) and 5xx errors are lines of their
// own, written where they happen. A request whose client went away before
// the answer was sent gets a `request aborted` line instead (Fastify's
// onRequestAbort misses a client that sent its whole request first).
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'
import { levels } from 'pino'

/** What a refused request's line says besides its status (set by plugins/errors.ts). */
export interface Refusal {
  readonly code: string
  readonly reason: string
  /** An audit event's fields (a refused credential's), written in the request's own line. */
  readonly [field: string]: unknown
}

export class OneLinePerRequest extends LogController {
  /** Below info (the benchmark runs at warn) the line is not even put together. */
  private readonly writesInfo: boolean

  constructor (level: string) {
    super()
    this.writesInfo = (levels.values[level] ?? Infinity) <= levels.values.info!
  }

  override incomingRequest (request: FastifyRequest, reply: FastifyReply): void {
    request.log.debug({ req: request }, 'incoming request')
    if (!this.writesInfo) return
    // The connection closed before the answer was sent: no 'finish', so no requestCompleted.
    reply.raw.once('close', () => {
      if (!reply.sent) request.log.info({ req: request, ...request.refusal }, 'request aborted')
    })
  }

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) {
      reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored')
      return
    }
    if (this.writesInfo) logCompleted(request, reply)
  }
}

/** The request's one line, with a refusal's code and reason when it has them. */
export function logCompleted (request: FastifyRequest, reply: FastifyReply): void {
  reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime, ...request.refusal }, 'request completed')
}
