// npm run contract -- --url http://127.0.0.1:3000 [options]
// HTTP-only contract checks against a running tokenlab: one line per check,
// then "N passed, N failed"; exit 0 when every check passed, 1 when any
// failed (or the service could not be checked), 2 for a usage error.
import { parseArgs } from 'node:util'
import type { Mode } from './checks.js'
import { runContract, SetupError, type ContractOptions } from './runner.js'

const EXIT_FAILED = 1
const EXIT_USAGE = 2

const usage = `usage: npm run contract -- --url URL [options]

Checks a running tokenlab over HTTP only (status, body, cookie attributes,
headers), in either auth mode, and prints one line per check and a last line
"N passed, N failed". Exits 0 when every check passed, 1 otherwise, 2 on a
usage error.

  --url URL                 the service, e.g. http://127.0.0.1:3000 (required)
  --mode jwt|session        the auth mode; detected when omitted: session when
                            /openapi.json offers no bearerAuth, else from a
                            login's cookie (a JWT, or a 43-character session id)
  --username U              an existing admin account (default vello.p)
  --password P              its password (default vello.p-8375)
  --user2-username U        an existing non-admin account, for the ownership
                            checks (default linda.m)
  --user2-password P        its password (default linda.m-0680)
  --origin ORIGIN           the service's own origin, sent as Origin on POSTs
                            (default: the origin of --url; set it when a proxy
                            in front changes the scheme or host)
  --cookie-name NAME        the auth cookie's name (default: from /openapi.json,
                            else token)
  --timeout SECONDS         per request (default 10)
  --help                    this text

Every run makes one failed login for --user2-username (the wrong-password
check) and otherwise fails logins only with random usernames, so it stays
within the login throttle (5 failures a minute by default). No token or
password is ever printed.`

class UsageError extends Error {}

function parse (argv: string[]): ContractOptions | 'help' {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        url: { type: 'string' },
        mode: { type: 'string' },
        username: { type: 'string', default: 'vello.p' },
        password: { type: 'string', default: 'vello.p-8375' },
        'user2-username': { type: 'string', default: 'linda.m' },
        'user2-password': { type: 'string', default: 'linda.m-0680' },
        origin: { type: 'string' },
        'cookie-name': { type: 'string' },
        timeout: { type: 'string', default: '10' },
        help: { type: 'boolean', default: false }
      },
      strict: true,
      allowPositionals: false
    }).values
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  if (values.help) return 'help'
  if (values.url === undefined) throw new UsageError('--url is required, e.g. --url http://127.0.0.1:3000')
  let url: URL
  try {
    url = new URL(values.url)
  } catch {
    throw new UsageError(`--url is not a URL: ${values.url}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('--url must start with http:// or https://')
  if (values.mode !== undefined && values.mode !== 'jwt' && values.mode !== 'session') throw new UsageError('--mode must be jwt or session')
  if (values.origin !== undefined && !/^https?:\/\/[^/]+$/.test(values.origin)) throw new UsageError('--origin must be scheme://host[:port], e.g. https://lab.example')
  if (!/^[1-9][0-9]{0,2}$/.test(values.timeout)) throw new UsageError('--timeout must be a whole number of seconds (1 to 999)')
  return {
    url: values.url,
    ...(values.mode !== undefined ? { mode: values.mode as Mode } : {}),
    ...(values.origin !== undefined ? { origin: values.origin } : {}),
    ...(values['cookie-name'] !== undefined ? { cookieName: values['cookie-name'] } : {}),
    account: { username: values.username, password: values.password },
    user2: { username: values['user2-username'], password: values['user2-password'] },
    timeoutMs: Number(values.timeout) * 1000
  }
}

async function main (argv: string[]): Promise<number> {
  let options: ContractOptions | 'help'
  try {
    options = parse(argv)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`contract: ${err.message}\nRun with --help for the options.\n`)
    return EXIT_USAGE
  }
  if (options === 'help') {
    process.stdout.write(`${usage}\n`)
    return 0
  }

  let passed = 0
  let failed = 0
  try {
    await runContract(options, {
      setup ({ mode, modeReason, cookieName }) {
        process.stdout.write(`contract checks against ${options.url}: mode ${mode} (${modeReason}), cookie ${cookieName}\n`)
      },
      result ({ name, passed: ok, message }) {
        if (ok) passed++
        else failed++
        process.stdout.write(ok ? `PASS ${name}\n` : `FAIL ${name}: ${message ?? ''}\n`)
      }
    })
  } catch (err) {
    if (!(err instanceof SetupError)) throw err
    failed++
    process.stdout.write(`FAIL setup: ${err.message}\n`)
  }
  process.stdout.write(`${passed} passed, ${failed} failed\n`)
  return failed === 0 && passed > 0 ? 0 : EXIT_FAILED
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (err: unknown) => {
  // A bug in the checker itself: one line, no stack.
  process.stderr.write(`contract: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = EXIT_FAILED
})
