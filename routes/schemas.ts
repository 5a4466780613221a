// Schemas shared by the route plugins. Path and query values arrive as
// strings and Ajv's type coercion is off, so numbers are strict patterns.
import { Type, type TSchema } from 'typebox'

export const ErrorRef = Type.Unsafe<{ statusCode: number, code: string, error: string, message: string }>({ $ref: 'Error#' })

/** The error responses a route can give, all in the contract's shape. */
export function errors (...statusCodes: number[]): Record<number, TSchema> {
  return Object.fromEntries(statusCodes.map((s) => [s, ErrorRef]))
}

export const Role = Type.Union([Type.Literal('admin'), Type.Literal('user'), Type.Literal('viewer')])

export const Principal = Type.Object({
  staffId: Type.Integer({ minimum: 1 }),
  username: Type.String(),
  role: Role,
  expiresAt: Type.String({ format: 'date-time' })
}, { additionalProperties: false })

// A positive id without sign, leading zero, exponent, hex or spaces: `042`, `1e3`, `0x2a` and ` 42` are 400s.
export const IdString = Type.String({ pattern: '^[1-9][0-9]{0,8}$' })
