// The rules deploy/k8s follows, as functions over rendered objects that
// return the violations they find (one line each, empty when none), so
// test/k8s.test.ts can run each one on the real rendering and on a
// deliberately broken copy. Also: a NetworkPolicy evaluator over a model of
// the cluster's pods, and the Ingress path matching of networking.k8s.io/v1.
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment'
import type { IJob } from 'kubernetes-models/batch/v1/Job'
import type { IIngress } from 'kubernetes-models/networking.k8s.io/v1/Ingress'
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy'
import type { INetworkPolicyPeer } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyPeer'
import type { INetworkPolicyPort } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyPort'
import type { IContainer } from 'kubernetes-models/v1/Container'
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec'
import type { IService } from 'kubernetes-models/v1/Service'
import type { IServiceAccount } from 'kubernetes-models/v1/ServiceAccount'
import type { K8sObject } from './k8s-render.js'

type LabelSelector = NonNullable<INetworkPolicyPeer['podSelector']>
type Labels = Record<string, string>

export interface PodTemplate {
  /** `Deployment/tokenlab`, `Job/tokenlab-migrate` */
  where: string
  kind: 'Deployment' | 'Job'
  name: string
  namespace: string | undefined
  labels: Labels
  annotations: Labels
  spec: IPodSpec
}

const of = <T>(objects: K8sObject[], kind: string): T[] => objects.filter((obj) => obj.kind === kind) as unknown as T[]

export function podTemplates (objects: K8sObject[]): PodTemplate[] {
  const templates: PodTemplate[] = []
  for (const obj of objects) {
    if (obj.kind !== 'Deployment' && obj.kind !== 'Job') continue
    const template = (obj as unknown as IDeployment | IJob).spec?.template
    templates.push({
      where: `${obj.kind}/${obj.metadata.name}`,
      kind: obj.kind,
      name: obj.metadata.name,
      namespace: obj.metadata.namespace,
      labels: template?.metadata?.labels ?? {},
      annotations: template?.metadata?.annotations ?? {},
      spec: template?.spec ?? { containers: [] }
    })
  }
  return templates
}

const allContainers = (spec: IPodSpec): IContainer[] => [...(spec.initContainers ?? []), ...spec.containers]

export function envValue (container: IContainer, name: string): string | undefined {
  return container.env?.find((e) => e.name === name)?.value
}

/** A Kubernetes quantity (`250m`, `1`, `512Mi`, `1G`) as a number of cores or bytes. */
export function quantity (value: string | number | undefined): number {
  if (typeof value === 'number') return value
  const match = /^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(value ?? '')
  if (match === null) return Number.NaN
  const unit = { '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 }[match[2] ?? '']
  return Number(match[1]) * (unit ?? Number.NaN)
}

export function selectorMatches (selector: LabelSelector | undefined, labels: Labels): boolean {
  if (selector === undefined) return false
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, key)
    const ok = operator === 'In'
      ? has && values.includes(labels[key] as string)
      : operator === 'NotIn'
        ? !has || !values.includes(labels[key] as string)
        : operator === 'Exists' ? has : operator === 'DoesNotExist' ? !has : false
    if (!ok) return false
  }
  return true
}

/** The container port a probe or Service targets, by name or number. */
function containerPort (container: IContainer, port: string | number | undefined) {
  return container.ports?.find((p) => typeof port === 'number' ? p.containerPort === port : p.name === port)
}

export interface ExpectedProbes { readiness: string, liveness: string, startup: string }

/** Every Deployment container has HTTP GET readiness, liveness and startup probes on the expected paths, on its serving port. */
export function probeViolations (objects: K8sObject[], expected: Record<string, ExpectedProbes>): string[] {
  const violations: string[] = []
  for (const pod of podTemplates(objects).filter((p) => p.kind === 'Deployment')) {
    for (const container of pod.spec.containers) {
      const where = `${pod.where} container ${container.name}`
      const paths = expected[container.name]
      if (paths === undefined) { violations.push(`${where}: no expected probe paths are known for it`); continue }
      for (const kind of ['readiness', 'liveness', 'startup'] as const) {
        const probe = container[`${kind}Probe`]
        if (probe === undefined) { violations.push(`${where}: no ${kind}Probe`); continue }
        if (probe.httpGet === undefined) { violations.push(`${where}: ${kind}Probe is not an HTTP GET`); continue }
        if (probe.httpGet.path !== paths[kind]) violations.push(`${where}: ${kind}Probe GETs ${probe.httpGet.path ?? '/'}, not ${paths[kind]}`)
        const port = containerPort(container, probe.httpGet.port)
        if (port === undefined) violations.push(`${where}: ${kind}Probe port ${String(probe.httpGet.port)} is not a container port`)
        else if (port.name === 'metrics') violations.push(`${where}: ${kind}Probe targets the metrics port`)
      }
    }
  }
  return violations
}

/** Non-root (uid not 0), no privilege escalation, no capabilities, RuntimeDefault seccomp, read-only root filesystem, no service-account token. */
export function podSecurityViolations (objects: K8sObject[]): string[] {
  const violations: string[] = []
  for (const account of of<IServiceAccount>(objects, 'ServiceAccount')) {
    if (account.automountServiceAccountToken !== false) violations.push(`ServiceAccount/${account.metadata?.name ?? '?'}: automountServiceAccountToken is not false`)
  }
  for (const pod of podTemplates(objects)) {
    const { spec } = pod
    const podContext = spec.securityContext ?? {}
    if (spec.automountServiceAccountToken !== false) violations.push(`${pod.where}: automountServiceAccountToken is not false`)
    for (const host of ['hostNetwork', 'hostPID', 'hostIPC'] as const) if (spec[host] === true) violations.push(`${pod.where}: ${host}`)
    for (const container of allContainers(spec)) {
      const where = `${pod.where} container ${container.name}`
      const context = container.securityContext ?? {}
      if ((context.runAsNonRoot ?? podContext.runAsNonRoot) !== true) violations.push(`${where}: runAsNonRoot is not true`)
      const uid = context.runAsUser ?? podContext.runAsUser
      if (uid === undefined || uid === 0) violations.push(`${where}: runAsUser is ${String(uid)}, not a non-root uid`)
      if (context.allowPrivilegeEscalation !== false) violations.push(`${where}: allowPrivilegeEscalation is not false`)
      if (context.privileged === true) violations.push(`${where}: privileged`)
      if (context.readOnlyRootFilesystem !== true) violations.push(`${where}: readOnlyRootFilesystem is not true`)
      if (!(context.capabilities?.drop ?? []).includes('ALL')) violations.push(`${where}: capabilities do not drop ALL`)
      if ((context.capabilities?.add ?? []).length > 0) violations.push(`${where}: adds capabilities`)
      if ((context.seccompProfile ?? podContext.seccompProfile)?.type !== 'RuntimeDefault') violations.push(`${where}: seccompProfile is not RuntimeDefault`)
    }
  }
  return violations
}

/** CPU and memory requests and limits on every container, each limit at least its request. */
export function resourceViolations (objects: K8sObject[]): string[] {
  const violations: string[] = []
  for (const pod of podTemplates(objects)) {
    for (const container of allContainers(pod.spec)) {
      const where = `${pod.where} container ${container.name}`
      for (const resource of ['cpu', 'memory']) {
        const request = quantity(container.resources?.requests?.[resource])
        const limit = quantity(container.resources?.limits?.[resource])
        if (Number.isNaN(request)) violations.push(`${where}: no ${resource} request`)
        if (Number.isNaN(limit)) violations.push(`${where}: no ${resource} limit`)
        if (limit < request) violations.push(`${where}: ${resource} limit below its request`)
      }
    }
  }
  return violations
}

function preStopSeconds (container: IContainer): number | undefined {
  const handler = container.lifecycle?.preStop
  if (handler?.sleep !== undefined) return handler.sleep.seconds
  const command = handler?.exec?.command ?? []
  const match = /^(?:\/bin\/)?sleep ([0-9]+)$/.exec(command.join(' ').replace(/^(?:\/bin\/)?sh -c /, ''))
  return match === null ? undefined : Number(match[1])
}

/**
 * Every Deployment container sleeps in preStop (so the endpoint removal
 * reaches the load balancers before SIGTERM), and the grace period covers
 * that sleep, the server's drain after SIGTERM (`drainSeconds`, by
 * Deployment name) and 2 s for the exit.
 */
export function shutdownViolations (objects: K8sObject[], drainSeconds: Record<string, number>): string[] {
  const violations: string[] = []
  for (const pod of podTemplates(objects).filter((p) => p.kind === 'Deployment')) {
    const grace = pod.spec.terminationGracePeriodSeconds ?? 30
    const drain = drainSeconds[pod.name]
    if (drain === undefined) { violations.push(`${pod.where}: how long its server drains is not known`); continue }
    for (const container of pod.spec.containers) {
      const sleep = preStopSeconds(container)
      if (sleep === undefined || sleep < 1) { violations.push(`${pod.where} container ${container.name}: no preStop sleep`); continue }
      if (grace < sleep + drain + 2) {
        violations.push(`${pod.where}: terminationGracePeriodSeconds ${grace} < preStop ${sleep} s + drain ${drain} s + 2 s`)
      }
    }
  }
  return violations
}

const SENSITIVE_ENV = /SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL|^DATABASE_(LISTEN_)?URL$/i
const CREDENTIALS_IN_TEXT = [/[a-z][a-z0-9+.-]*:\/\/[^\s/@:]+:[^\s/@]+@/i, /-----BEGIN [A-Z ]*PRIVATE KEY-----/]

function strings (value: unknown, found: string[] = []): string[] {
  if (typeof value === 'string') found.push(value)
  else if (Array.isArray(value)) for (const item of value) strings(item, found)
  else if (typeof value === 'object' && value !== null) for (const item of Object.values(value)) strings(item, found)
  return found
}

/** The Secret a file path is mounted from, for a container of a pod (and, when the volume lists items, one of them). */
function secretVolumeOf (spec: IPodSpec, container: IContainer, path: string): string | undefined {
  const mount = container.volumeMounts?.find((m) => path.startsWith(m.mountPath.replace(/\/?$/, '/')))
  const secret = spec.volumes?.find((v) => v.name === mount?.name)?.secret
  if (mount === undefined || secret === undefined) return undefined
  const file = path.slice(mount.mountPath.replace(/\/?$/, '/').length)
  return secret.items === undefined || secret.items.some((item) => item.path === file) ? secret.secretName : undefined
}

/**
 * No secret value in any manifest: no Secret objects (the operator creates
 * them), no literal value for a sensitive variable (it comes from a
 * secretKeyRef; a *_FILE variable names a file in a Secret volume), no
 * credentials or private key anywhere in the text.
 */
export function inlineSecretViolations (objects: K8sObject[]): string[] {
  const violations: string[] = []
  for (const obj of objects) {
    if (obj.kind === 'Secret') violations.push(`Secret/${obj.metadata.name}: defined in the manifests (the operator creates Secrets)`)
    for (const text of strings(obj)) {
      if (CREDENTIALS_IN_TEXT.some((pattern) => pattern.test(text))) violations.push(`${obj.kind}/${obj.metadata.name}: a credential in ${JSON.stringify(text.slice(0, 40))}…`)
    }
  }
  for (const pod of podTemplates(objects)) {
    for (const container of allContainers(pod.spec)) {
      for (const e of container.env ?? []) {
        if (!SENSITIVE_ENV.test(e.name)) continue
        const where = `${pod.where} container ${container.name} env ${e.name}`
        if (e.name.endsWith('_FILE')) {
          if (e.value === undefined || secretVolumeOf(pod.spec, container, e.value) === undefined) violations.push(`${where}: not a file in a mounted Secret volume`)
        } else if (e.value !== undefined) {
          violations.push(`${where}: an inline value`)
        } else if (e.valueFrom?.secretKeyRef === undefined) {
          violations.push(`${where}: not from a secretKeyRef`)
        }
      }
    }
  }
  return violations
}

/**
 * The Secret holding the private key (the one JWT_PRIVATE_KEY_FILE's path
 * lies in) is mounted into tokenlab's container and referenced nowhere else.
 */
export function privateKeyViolations (objects: K8sObject[], owner = { workload: 'Deployment/tokenlab', container: 'tokenlab' }): string[] {
  const violations: string[] = []
  const pods = podTemplates(objects)
  const holders = pods.flatMap((pod) => allContainers(pod.spec)
    .filter((c) => c.env?.some((e) => e.name === 'JWT_PRIVATE_KEY_FILE'))
    .map((container) => ({ pod, container })))
  const expectedHolder = holders.find(({ pod, container }) => pod.where === owner.workload && container.name === owner.container)
  for (const { pod, container } of holders) {
    if (pod.where !== owner.workload || container.name !== owner.container) violations.push(`${pod.where} container ${container.name}: sets JWT_PRIVATE_KEY_FILE`)
  }
  if (expectedHolder === undefined) return [...violations, `${owner.workload} container ${owner.container}: no JWT_PRIVATE_KEY_FILE`]
  const keyPath = envValue(expectedHolder.container, 'JWT_PRIVATE_KEY_FILE') ?? ''
  const secret = secretVolumeOf(expectedHolder.pod.spec, expectedHolder.container, keyPath)
  if (secret === undefined) return [...violations, `${owner.workload}: JWT_PRIVATE_KEY_FILE ${keyPath} is not in a mounted Secret volume`]

  for (const pod of pods) {
    const volumes = (pod.spec.volumes ?? []).filter((v) => v.secret?.secretName === secret ||
      v.projected?.sources?.some((s) => s.secret?.name === secret) === true)
    if (volumes.length > 0 && pod.where !== owner.workload) violations.push(`${pod.where}: mounts the private key Secret ${secret}`)
    for (const container of allContainers(pod.spec)) {
      const mounted = container.volumeMounts?.some((m) => volumes.some((v) => v.name === m.name)) === true
      if (mounted && (pod.where !== owner.workload || container.name !== owner.container)) violations.push(`${pod.where} container ${container.name}: mounts the private key Secret ${secret}`)
      const referenced = container.env?.some((e) => e.valueFrom?.secretKeyRef?.name === secret) === true ||
        container.envFrom?.some((e) => e.secretRef?.name === secret) === true
      if (referenced) violations.push(`${pod.where} container ${container.name}: reads the private key Secret ${secret} into its environment`)
    }
  }
  return violations
}

const servicePods = (service: IService, objects: K8sObject[]) => podTemplates(objects).filter((pod) =>
  pod.namespace === service.metadata?.namespace && Object.keys(service.spec?.selector ?? {}).length > 0 &&
  Object.entries(service.spec?.selector ?? {}).every(([key, value]) => pod.labels[key] === value))

/**
 * The metrics port (METRICS_PORT, a container port named `metrics`,
 * announced to Prometheus by the pod annotations) is not behind any Service
 * an Ingress routes to.
 */
export function metricsViolations (objects: K8sObject[]): string[] {
  const violations: string[] = []
  for (const pod of podTemplates(objects)) {
    for (const container of pod.spec.containers) {
      const metricsPort = envValue(container, 'METRICS_PORT')
      if (metricsPort === undefined) continue
      const named = container.ports?.find((p) => p.name === 'metrics')
      if (named?.containerPort !== Number(metricsPort)) violations.push(`${pod.where} container ${container.name}: no container port named metrics at METRICS_PORT ${metricsPort}`)
      if (pod.annotations['prometheus.io/port'] !== metricsPort || pod.annotations['prometheus.io/scrape'] !== 'true') {
        violations.push(`${pod.where}: the prometheus.io annotations do not announce port ${metricsPort}`)
      }
    }
  }
  const services = of<IService>(objects, 'Service')
  for (const ingress of of<IIngress>(objects, 'Ingress')) {
    const backends = [ingress.spec?.defaultBackend, ...(ingress.spec?.rules ?? []).flatMap((r) => (r.http?.paths ?? []).map((p) => p.backend))]
    for (const name of new Set(backends.map((b) => b?.service?.name).filter((n) => n !== undefined))) {
      const service = services.find((s) => s.metadata?.name === name && s.metadata.namespace === ingress.metadata?.namespace)
      if (service === undefined) { violations.push(`Ingress/${ingress.metadata?.name ?? '?'}: routes to Service ${name}, which is not defined`); continue }
      for (const servicePort of service.spec?.ports ?? []) {
        for (const pod of servicePods(service, objects)) {
          for (const container of pod.spec.containers) {
            const port = containerPort(container, servicePort.targetPort ?? servicePort.port)
            if (port === undefined) continue
            if (port.name === 'metrics' || String(port.containerPort) === envValue(container, 'METRICS_PORT')) {
              violations.push(`Service/${name}: port ${servicePort.port} reaches the metrics port of ${pod.where}, and Ingress/${ingress.metadata?.name ?? '?'} routes to it`)
            }
          }
        }
      }
    }
  }
  return violations
}

/** Which Service and port an Ingress sends `host` + `path` to (networking.k8s.io/v1 matching: Exact, or the longest Prefix by path segments). */
export function ingressRoute (ingress: IIngress, host: string, path: string): string | undefined {
  const candidates = (ingress.spec?.rules ?? [])
    .filter((rule) => rule.host === undefined || rule.host === host)
    .flatMap((rule) => rule.http?.paths ?? [])
    .filter((p) => {
      const rulePath = p.path ?? '/'
      if (p.pathType === 'Exact') return path === rulePath
      if (p.pathType === 'Prefix') {
        const prefix = rulePath.replace(/\/+$/, '')
        return prefix === '' || path === prefix || path.startsWith(`${prefix}/`)
      }
      return false // ImplementationSpecific: controller-dependent, never used here
    })
    .sort((a, b) => (b.path ?? '/').length - (a.path ?? '/').length || (a.pathType === 'Exact' ? -1 : 0) - (b.pathType === 'Exact' ? -1 : 0))
  const backend = candidates[0]?.backend ?? ingress.spec?.defaultBackend
  const service = backend?.service
  return service === undefined ? undefined : `${service.name}:${service.port?.name ?? String(service.port?.number)}`
}

export interface ModelPod {
  name: string
  namespace: string
  labels: Labels
  ports: Array<{ port: number, protocol: 'TCP' | 'UDP', name?: string }>
}

const peerMatches = (peer: INetworkPolicyPeer, policyNamespace: string, pod: ModelPod): boolean => {
  if (peer.ipBlock !== undefined) throw new Error('ipBlock peers are not modelled')
  const namespaceLabels = { 'kubernetes.io/metadata.name': pod.namespace }
  const namespaceOk = peer.namespaceSelector !== undefined ? selectorMatches(peer.namespaceSelector, namespaceLabels) : pod.namespace === policyNamespace
  return namespaceOk && (peer.podSelector === undefined || selectorMatches(peer.podSelector, pod.labels))
}

const portMatches = (ports: INetworkPolicyPort[] | undefined, port: ModelPod['ports'][number]): boolean =>
  ports === undefined || ports.length === 0 || ports.some((p) => (p.protocol ?? 'TCP') === port.protocol && (p.port === undefined ||
    (typeof p.port === 'number' ? port.port >= p.port && port.port <= (p.endPort ?? p.port) : p.port === port.name)))

function allowedBy (policies: INetworkPolicy[], direction: 'Ingress' | 'Egress', self: ModelPod, peer: ModelPod, port: ModelPod['ports'][number]): boolean {
  const selecting = policies.filter((policy) => {
    const spec = policy.spec ?? {}
    const types = spec.policyTypes ?? ['Ingress', ...(spec.egress !== undefined ? ['Egress'] : [])]
    return policy.metadata?.namespace === self.namespace && types.includes(direction) && selectorMatches(spec.podSelector ?? {}, self.labels)
  })
  if (selecting.length === 0) return true // no policy isolates this pod in this direction
  return selecting.some((policy) => {
    const rules = direction === 'Ingress'
      ? (policy.spec?.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports }))
      : (policy.spec?.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }))
    return rules.some(({ peers, ports }) => (peers === undefined || peers.length === 0 || peers.some((p) => peerMatches(p, policy.metadata?.namespace ?? '', peer))) && portMatches(ports, port))
  })
}

/** Every connection the policies allow between distinct model pods (of those `relevant` picks), as `src -> dst:port/protocol`. */
export function allowedConnections (policies: INetworkPolicy[], pods: ModelPod[], relevant = (_src: ModelPod, _dst: ModelPod) => true): string[] {
  const allowed: string[] = []
  for (const src of pods) {
    for (const dst of pods) {
      if (src === dst || !relevant(src, dst)) continue
      for (const port of dst.ports) {
        if (allowedBy(policies, 'Egress', src, dst, port) && allowedBy(policies, 'Ingress', dst, src, port)) allowed.push(`${src.name} -> ${dst.name}:${port.port}/${port.protocol}`)
      }
    }
  }
  return allowed.sort()
}
