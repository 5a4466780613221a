// npm run contract -- --url http://127.0.0.1:3000 [options]
// HTTP-only contract checks against a running tokenlab: one line per check,
// then "N passed, N failed, N skipped"; exit 0 when every check that ran
// passed, 1 when any failed (or the service could not be checked), 2 for a
// usage error.
import { parseArgs } from 'node:util'
import { MODES, type Account, type Mode } from './checks.js'
import { runContract, SetupError, type ContractOptions } from './runner.js'

const EXIT_FAILED = 1
const EXIT_USAGE = 2

const usage = `usage: npm run contract -- --url URL [options]

Checks a running tokenlab over HTTP only (status, body, cookie attributes,
headers) in whichever mode it runs, every route of that mode, and prints one
line per check (PASS, FAIL or SKIP) and a last line "N passed, N failed,
N skipped". Exits 0 when no check failed, 1 otherwise, 2 on a usage error.

  --url URL                 the service, e.g. http://127.0.0.1:3000 (required)
  --mode MODE               jwt, jwt+revocation, jwt+refresh,
                            jwt+refresh+revocation or session; detected when
                            omitted: session when /openapi.json offers no
                            bearerAuth (else a login's cookie tells), refresh
                            when it offers POST /refresh (then a logged-out
                            token tells revocation), revocation without
                            refresh when it offers DELETE /sessions
  --username U              an existing admin account (default vello.p)
  --password P              its password (default vello.p-8375)
  --user2-username U        an existing non-admin account, for the ownership
                            checks (default linda.m)
  --user2-password P        its password (default linda.m-0680)
  --password-account U:P    a throwaway account (username, a colon, its
                            password of 8 to 128 characters) for POST /password:
                            the check changes its password, checks, and
                            changes it back. Never one of the two above.
                            Without it that check is skipped
  --origin ORIGIN           the service's own origin, sent as Origin on POSTs
                            and DELETEs (default: the origin of --url; set it
                            when a proxy in front changes the scheme or host)
  --cookie-name NAME        the auth cookie's name (default: from /openapi.json,
                            else token)
  --refresh-cookie-name NAME  the refresh cookie's name (default: from
                            /openapi.json, else refresh)
  --timeout SECONDS         per request (default 10)
  --help                    this text

Every run makes one failed login for --user2-username (the wrong-password
check), two for --password-account when given (a wrong current password
before the change, the temporary password after it is changed back), and
otherwise fails logins only with random usernames, so it stays within the
login throttle (5 failures a minute by default). Where the mode has
DELETE /sessions, one check logs out everywhere: every login of
--password-account, or of --user2-username without it, ends. The logins a
run makes are logged out at its end. No token or password is ever printed.`

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
        'password-account': { type: 'string' },
        origin: { type: 'string' },
        'cookie-name': { type: 'string' },
        'refresh-cookie-name': { type: 'string' },
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
  if (values.mode !== undefined && !(MODES as readonly string[]).includes(values.mode)) throw new UsageError(`--mode must be one of ${MODES.join(', ')}`)
  if (values.origin !== undefined && !/^https?:\/\/[^/]+$/.test(values.origin)) throw new UsageError('--origin must be scheme://host[:port], e.g. https://lab.example')
  if (!/^[1-9][0-9]{0,2}$/.test(values.timeout)) throw new UsageError('--timeout must be a whole number of seconds (1 to 999)')
  const account = { username: values.username, password: values.password }
  const user2 = { username: values['user2-username'], password: values['user2-password'] }
  const passwordAccount = values['password-account'] === undefined ? undefined : throwaway(values['password-account'], [account, user2])
  return {
    url: values.url,
    ...(values.mode !== undefined ? { mode: values.mode as Mode } : {}),
    ...(values.origin !== undefined ? { origin: values.origin } : {}),
    ...(values['cookie-name'] !== undefined ? { cookieName: values['cookie-name'] } : {}),
    ...(values['refresh-cookie-name'] !== undefined ? { refreshCookieName: values['refresh-cookie-name'] } : {}),
    account,
    user2,
    ...(passwordAccount !== undefined ? { passwordAccount } : {}),
    timeoutMs: Number(values.timeout) * 1000
  }
}

/** --password-account USER:PASSWORD, split at the first colon: never one of the other accounts, and a password the change back can set again. */
function throwaway (value: string, others: Account[]): Account {
  const colon = value.indexOf(':')
  if (colon <= 0) throw new UsageError('--password-account must be USERNAME:PASSWORD')
  const account = { username: value.slice(0, colon), password: value.slice(colon + 1) }
  const same = (a: string, b: string) => a.normalize('NFC').toLowerCase() === b.normalize('NFC').toLowerCase()
  if (others.some((other) => same(other.username, account.username))) throw new UsageError('--password-account must be a throwaway account, not --username or --user2-username: its password is changed (and changed back)')
  // The check sets this password again at the end, and POST /password takes 8 to 128 characters.
  if (account.password.length < 8 || account.password.length > 128) throw new UsageError('--password-account: the password must be 8 to 128 characters, as POST /password will set it back')
  return account
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

  const counts = { passed: 0, failed: 0, skipped: 0 }
  try {
    await runContract(options, {
      setup ({ mode, modeReason, algorithm, cookieName }) {
        const alg = algorithm === undefined ? '' : `, algorithm ${algorithm.name} (${algorithm.reason})`
        process.stdout.write(`contract checks against ${options.url}: mode ${mode} (${modeReason})${alg}, cookie ${cookieName}\n`)
      },
      result ({ name, outcome, message }) {
        counts[outcome]++
        process.stdout.write(outcome === 'passed' ? `PASS ${name}\n` : `${outcome === 'failed' ? 'FAIL' : 'SKIP'} ${name}: ${message ?? ''}\n`)
      }
    })
  } catch (err) {
    if (!(err instanceof SetupError)) throw err
    counts.failed++
    process.stdout.write(`FAIL setup: ${err.message}\n`)
  }
  process.stdout.write(`${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped\n`)
  return counts.failed === 0 && counts.passed > 0 ? 0 : EXIT_FAILED
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (err: unknown) => {
  // A bug in the checker itself: one line, no stack.
  process.stderr.write(`contract: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = EXIT_FAILED
})
